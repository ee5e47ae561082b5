"""The inference service: serves registered models (and local checkpoint directories) from memory.

Layers, outermost first: `server` (bootstrap, `python -m tunix_rt.inference`; the all-in-one
launcher, `tunix-rt up`, is `tunix_rt.launcher.up`) → `servicer` (InferenceService, thin) and
`oip` (the Open Inference Protocol v2 for standard clients) → `generation` (one request:
validate, render, run the engine on its own thread), `prediction` (BatchPredict: many items in
flight) and `evaluation` (Evaluate: the order of its steps, over `eval_items`, `eval_pass`,
`eval_metrics`, `eval_records` and `gate`) → `model_store` (references → versions → local
weights → engines, within a memory budget; `references` resolves, `artifact_cache` fetches) →
`engines` (JAX and torch generation with batching). `validation` checks sampling parameters and
prompts.
"""
