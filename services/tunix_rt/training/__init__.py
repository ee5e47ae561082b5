"""The training service: owns the host's devices, queues fine-tuning jobs and runs each in its own
worker process.

Layers, top down:

- `server` (config, dependencies, the grpc.aio server) → `servicer` (thin: proto in, domain call,
  proto out);
- `jobs` (the job manager: each job's lifecycle over its registry run) with `job_spec` (a
  submitted job validated into a `spec.TrainSpec`: the only validation a job gets), `job_view`
  and `job_listing` (jobs as callers see them), `live_job` (what the service knows of a running
  job), `scheduler` (devices, queue, allocation) and `event_hub` (sequenced metric fan-out);
  `registry_link` and `completion_eval` call the registry and inference services;
- `worker_process` starts one `worker` process per attempt, which speaks `worker_protocol` on its
  stdout and runs a backend (`backends.jax_backend`, `backends.torch_backend`; what both share is
  framework-free under `backends/`).

Domain modules import neither grpc nor SQLAlchemy; model code (presets, tokenizer, model
definitions and directories) is `tunix_rt.models`, shared with inference.
"""
