"""AdamW as both backends run it: the betas, epsilon and the learning-rate schedule.

The schedule is linear warmup, then cosine / linear / constant decay to `min_learning_rate_ratio`
of the peak: one pure function of the step count, written with arithmetic and comparisons only
(no branch on the count), so the same function takes a Python int (the torch loop, and the
`learning_rate` metric on both backends) and a traced integer array inside optax's jitted update
(optax calls a callable learning rate with its step count). The cosine comes from the count's own
array namespace (`__array_namespace__`, the Python array API standard) when it has one, from
`math` otherwise, so this module imports no framework and each worker loads only its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tunix_rt.training.spec import Hyperparameters

# nanoGPT's betas: beta2 0.95 reacts faster than 0.999 to the loss scale changes of small-batch
# language-model training.
BETAS = (0.9, 0.95)
EPS = 1e-8  # optax's default, given to torch too


def _cos(x: Any) -> Any:
    namespace = getattr(x, "__array_namespace__", None)
    return namespace().cos(x) if namespace is not None else math.cos(x)


def make_schedule(
    hyper: Hyperparameters, total_steps: int, warmup_steps: int
) -> Callable[[Any], Any]:
    """lr(count): the rate of the update after `count` earlier updates. Warmup rises linearly to
    the peak over `warmup_steps` (the first update already gets peak / warmup, not 0), then
    decays to `min_learning_rate_ratio * peak` at the last step."""
    peak = hyper.learning_rate
    floor = peak * hyper.min_learning_rate_ratio
    decay_steps = max(1, total_steps - warmup_steps - 1)

    def schedule(count: Any) -> Any:
        warm = peak * (count + 1) / max(1, warmup_steps)
        progress = (count - warmup_steps) / decay_steps
        # clip(progress, 0, 1) as a select: multiplying by a comparison keeps it exact
        progress = progress * (progress > 0) * (progress <= 1) + (progress > 1)
        if hyper.schedule == "cosine":
            decayed = floor + (peak - floor) * 0.5 * (1 + _cos(math.pi * progress))
        elif hyper.schedule == "linear":
            decayed = peak - (peak - floor) * progress
        else:
            decayed = peak + 0.0 * progress  # the count's type: an array when it is traced
        return (count < warmup_steps) * warm + (count >= warmup_steps) * decayed

    return schedule
