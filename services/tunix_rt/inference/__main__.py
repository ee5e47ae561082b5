"""`python -m tunix_rt.inference`: the same as `tunix-rt serve inference` with its defaults and
environment (TUNIX_RT_INFERENCE_PORT, TUNIX_RT_REGISTRY, TUNIX_RT_INFERENCE_DATA_DIR,
TUNIX_RT_INFERENCE_MEMORY_BUDGET, ...)."""

from __future__ import annotations

from tunix_rt.inference.server import run_inference

if __name__ == "__main__":
    run_inference(None, None, None, None, None, None)
