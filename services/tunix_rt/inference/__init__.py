"""The inference service: serves registered models (and local checkpoint directories) from memory.

Layers, outermost first: `server` (bootstrap; `up` runs all three services in one process) →
`servicer` (InferenceService, thin) and `oip` (the Open Inference Protocol v2 for standard
clients) → `generation` (one request: validate, render, run the engine on its own thread) and
`evaluation` (BatchPredict / Evaluate) → `model_store` (references → versions → local weights →
engines, within a memory budget; `references` resolves, `artifact_cache` fetches) → `engines`
(JAX and torch generation with batching). `validation` checks sampling parameters and prompts.
"""
