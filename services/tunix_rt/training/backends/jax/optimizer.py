"""AdamW with linear warmup and cosine / linear / constant decay, clipping and weight decay.

The schedule is one pure function of the step, used both inside optax (on a traced count) and on
the host for the `learning_rate` metric, so the reported rate is exactly the one applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from tunix_rt.training.spec import Hyperparameters

# nanoGPT's betas: beta2 0.95 reacts faster than 0.999 to the loss scale changes of small-batch
# language-model training.
BETAS = (0.9, 0.95)


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
        xp: Any = jnp if isinstance(count, jax.Array) else math
        warm = peak * (count + 1) / max(1, warmup_steps)
        progress = (count - warmup_steps) / decay_steps
        progress = jnp.clip(progress, 0.0, 1.0) if xp is jnp else min(1.0, max(0.0, progress))
        if hyper.schedule == "cosine":
            decayed = floor + (peak - floor) * 0.5 * (1 + xp.cos(math.pi * progress))
        elif hyper.schedule == "linear":
            decayed = peak - (peak - floor) * progress
        else:
            decayed = peak + 0.0 * progress
        if xp is jnp:
            return jnp.where(count < warmup_steps, warm, decayed)
        return warm if count < warmup_steps else decayed

    return schedule


def _decay_mask(params: Any) -> Any:
    """Weight decay on matrices only, not on norm scales and biases (1-D)."""
    return jax.tree.map(lambda x: x.ndim >= 2, params)


def make_optimizer(
    hyper: Hyperparameters, schedule: Callable[[Any], Any]
) -> optax.GradientTransformation:
    """clip_by_global_norm (when max_grad_norm > 0), then AdamW. Gradient accumulation is
    PeftTrainer's (it wraps this in optax.MultiSteps)."""
    parts = []
    if hyper.max_grad_norm > 0:
        parts.append(optax.clip_by_global_norm(hyper.max_grad_norm))
    parts.append(
        optax.adamw(
            schedule, b1=BETAS[0], b2=BETAS[1], weight_decay=hyper.weight_decay, mask=_decay_mask
        )
    )
    return optax.chain(*parts)
