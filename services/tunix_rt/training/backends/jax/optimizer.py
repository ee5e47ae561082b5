"""The JAX backend's optimizer: gradient clipping, then AdamW (backends/adamw.py: betas, epsilon
and the learning-rate schedule, which optax calls with its traced step count) with weight decay on
matrices only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

from tunix_rt.training.backends.adamw import BETAS, EPS
from tunix_rt.training.spec import Hyperparameters


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
            schedule,
            b1=BETAS[0],
            b2=BETAS[1],
            eps=EPS,
            weight_decay=hyper.weight_decay,
            mask=_decay_mask,
        )
    )
    return optax.chain(*parts)
