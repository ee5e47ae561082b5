"""The registry service: tunix-rt's system of record.

Layers, outermost first: `server` (bootstrap) → `servicer` (proto in/out, thin) → `convert`
(proto ↔ domain) → domain modules (`traces`, `datasets`, `runs`, `models`, `evaluations`,
`artifacts`, plain Python that imports neither grpc nor SQLAlchemy) → `storage` (the only package
that imports SQLAlchemy) and `blob_store` (content-addressed files).
"""
