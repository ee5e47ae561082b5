"""Which backend trains a job that leaves `backend` unset: the one measured faster on the
allocated device kind. The choice goes into the job's spec (so the run's config records it) and
`TrainingJob.resolved_backend`.

| kind | choice | evidence                                                                      |
|------|--------|-------------------------------------------------------------------------------|
| cpu  | torch  | bench/training_backends.py, llama3-2.5m, 8x128 packed, this 2-core CPU (shared |
|      |        | with other work, so runs swing widely; best round = least disturbed):          |
|      |        | 2 threads, best of 5: torch backend 7,233 tokens/s, JAX backend 5,361 (0.74x); |
|      |        | 1 thread (a 1-core slot), 3 rounds: best torch 3,869 / JAX 3,665, median      |
|      |        | torch 2,938 / JAX 1,923 (0.65x). The issue's own runs agree (plain torch      |
|      |        | 6,200-7,450 vs JAX ~3,900). Caveat: under heavy contention from other         |
|      |        | processes torch's OpenMP threads degrade more than XLA's (2-thread medians    |
|      |        | were JAX 4,479 vs torch 1,887), a shared, oversubscribed host can favour JAX. |
|      |        | 2026-12-07, after the JAX backend's MLP weight gradients stopped transposing  |
|      |        | their output gradient (models/jax/linear_grad.py), quiet host, 3 rounds:      |
|      |        | JAX / torch 0.82 best, 0.83 median (7,130 vs 8,723): torch still faster.      |
| gpu  | jax    | UNMEASURED: no GPU was available when the rule was set. XLA's fused kernels   |
|      |        | are the usual winner on GPUs; rerun the bench on a GPU and change this row.   |
| tpu  | jax    | the only backend that runs on TPUs.                                           |
"""

from __future__ import annotations

JAX, TORCH = "jax", "torch"
CHOICE = {"cpu": TORCH, "gpu": JAX, "tpu": JAX}
# The backends that can train on each device kind.
SUPPORTED = {"cpu": (JAX, TORCH), "gpu": (JAX, TORCH), "tpu": (JAX,)}


def choose(device_kind: str) -> str:
    """The backend for a job on `device_kind` (cpu | gpu | tpu) that did not name one."""
    return CHOICE.get(device_kind, JAX)


def supported(device_kind: str) -> tuple[str, ...]:
    return SUPPORTED.get(device_kind, (JAX,))
