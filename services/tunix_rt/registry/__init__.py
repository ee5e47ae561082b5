"""The registry service: tunix-rt's system of record.

Layers, outermost first; each imports only the layers below it:

- `server` (bootstrap) → `servicer` (proto in, use case, proto out: nothing else) with `convert`
  (messages ↔ domain objects).
- `registry.Registry` → `use_cases/`: one module per resource (`traces`, `datasets`, `runs`,
  `models`, `artifacts`, `evaluations`, `eval_sets`), one method per RPC, named after it: the rules
  of each request over the repository and the blob store. No grpc, no SQLAlchemy.
- `storage/`: the only package that imports SQLAlchemy; it returns domain objects, never rows.
- Domain modules: what each resource is, its limits and checks (`traces`, `datasets` with the SFT
  rendering, `runs`, `models`, `artifacts`, `evaluations`, `eval_sets`, `names`, `limits`). Plain
  Python that imports neither grpc nor SQLAlchemy.
- `blob_store`: content-addressed files on disk.
"""
