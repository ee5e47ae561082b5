"""The training service: owns the host's devices, queues fine-tuning jobs and runs each in its own
worker process.

Layers: `server` → `servicer` (thin) → `jobs` (job lifecycle over the registry) → `scheduler`
(devices, queue; plain Python) and `event_hub` (sequenced metric fan-out) → `worker` processes →
backends. Domain modules import neither grpc nor SQLAlchemy.
"""
