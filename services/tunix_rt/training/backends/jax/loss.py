"""The training loss: next-token cross-entropy on target tokens only, with integer labels.

tunix's default loss builds a one-hot `[B, T, V]` tensor (~15 % slower on CPU, DESIGN.md), so
PeftTrainer gets this one through `with_loss_fn`. Packed rows hold several examples; the
attention mask is block-diagonal causal from the segment ids, so no token attends across
examples, and positions (from packing) restart at 0 per example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

ModelInput = dict[str, jax.Array]


def attention_mask(segment_ids: jax.Array) -> jax.Array:
    """`[B, T, T]` bool: query i sees key j iff j <= i, both in the same example, j not padding."""
    length = segment_ids.shape[1]
    causal = jnp.tril(jnp.ones((length, length), dtype=bool))  # [T, T]
    same = segment_ids[:, :, None] == segment_ids[:, None, :]  # [B, T, T]
    return same & causal[None] & (segment_ids[:, None, :] > 0)


def model_input(batch: dict[str, Any]) -> ModelInput:
    """PeftTrainer's `gen_model_input_fn`: a batch (packing.Batch.as_model_input) to the loss
    function's keyword arguments. Runs inside the jitted step."""
    return {
        "input_tokens": batch["input_tokens"],  # [B, T]
        "positions": batch["positions"],  # [B, T]
        "attention_mask": attention_mask(batch["segment_ids"]),  # [B, T, T]
        "loss_mask": batch["loss_mask"],  # [B, T]
    }


def _in_dtype(model: nnx.Module, dtype: Any) -> nnx.Module:
    """A view of `model` with floating parameters cast to `dtype` (mixed precision: the master
    weights stay float32 and receive float32 gradients through the cast)."""
    graphdef, state = nnx.split(model)
    cast = jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, state
    )
    return nnx.merge(graphdef, cast)


def token_losses(
    model: nnx.Module,
    input_tokens: jax.Array,
    positions: jax.Array,
    attention_mask: jax.Array,
    loss_mask: jax.Array,
    dtype: Any = jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """(sum of target-token cross-entropies, number of target tokens) of a batch."""
    if dtype != jnp.float32:
        model = _in_dtype(model, dtype)
    logits_btv, _ = model(input_tokens, positions, None, attention_mask)  # [B, T, V]
    logits_btv = logits_btv[:, :-1].astype(jnp.float32)  # [B, T-1, V]: predicts tokens 1..T-1
    targets_bt = input_tokens[:, 1:]  # [B, T-1]
    mask_bt = loss_mask[:, 1:].astype(jnp.float32)  # [B, T-1]
    ce_bt = optax.softmax_cross_entropy_with_integer_labels(logits_btv, targets_bt)
    return jnp.sum(ce_bt * mask_bt), jnp.sum(mask_bt)


def make_loss_fn(dtype: Any = jnp.float32) -> Callable[..., jax.Array]:
    """The mean target-token cross-entropy of a batch, computing in `dtype`."""

    def loss_fn(
        model: nnx.Module,
        input_tokens: jax.Array,
        positions: jax.Array,
        attention_mask: jax.Array,
        loss_mask: jax.Array,
    ) -> jax.Array:
        total, count = token_losses(
            model, input_tokens, positions, attention_mask, loss_mask, dtype
        )
        return total / jnp.maximum(count, 1.0)

    return loss_fn
