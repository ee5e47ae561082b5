"""The learning-rate schedule as plain Python: linear warmup, then cosine / linear / constant decay.

The same formula as the JAX backend's `backends/jax/optimizer.make_schedule` (tested equal), kept
framework-free so the torch worker need not import jax or optax to know its learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tunix_rt.training.spec import Hyperparameters


def make_schedule(
    hyper: Hyperparameters, total_steps: int, warmup_steps: int
) -> Callable[[int], float]:
    """lr(count): the rate of the update after `count` earlier updates. Warmup rises linearly to
    the peak over `warmup_steps` (the first update already gets peak / warmup, not 0), then
    decays to `min_learning_rate_ratio * peak` at the last step."""
    peak = hyper.learning_rate
    floor = peak * hyper.min_learning_rate_ratio
    decay_steps = max(1, total_steps - warmup_steps - 1)

    def schedule(count: int) -> float:
        if count < warmup_steps:
            return peak * (count + 1) / max(1, warmup_steps)
        progress = min(1.0, max(0.0, (count - warmup_steps) / decay_steps))
        if hyper.schedule == "cosine":
            return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if hyper.schedule == "linear":
            return peak - (peak - floor) * progress
        return peak

    return schedule
