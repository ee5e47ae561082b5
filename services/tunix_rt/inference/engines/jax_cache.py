"""The jitted operations on the JAX engine's ring-buffer KV cache (see jax_engine): a staged
prompt scattered into its rows, growing the cache by a bucket, dropping the top half of its rows.

The cache is `{layer_i: {k, v}}` of [batch, kv_heads, slots, head_dim] with a `valid` mask
[batch, slots] and one write slot `write` shared by all rows.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def scatter(
    cache: Any,
    valid: jax.Array,
    prompt_cache: Any,
    real: jax.Array,
    rows: jax.Array,
    write: jax.Array,
) -> tuple[Any, jax.Array]:
    """The staged prompts' keys/values ([PREFILL_ROWS, P', K, H], `real` marking the slots that
    are prompt, not padding) written into `rows` just behind `write`; a row index past the batch
    is dropped."""
    slots_total = valid.shape[1]
    length = real.shape[1]
    slots = (write - length + jnp.arange(length)) % slots_total
    valid = valid.at[rows].set(False, mode="drop")
    valid = valid.at[rows[:, None], slots[None, :]].set(real, mode="drop")
    # Our cache is [B, K, S, H], the prompt's (tunix's) [n, P, K, H]: indexing rows and slots
    # around the K slice puts the indexed dims first, [n, P, K, H], so no transpose.
    out = {
        name: {
            part: layer[part]
            .at[rows[:, None], :, slots[None, :]]
            .set(prompt_cache[name][part], mode="drop")
            for part in ("k", "v")
        }
        for name, layer in cache.items()
    }
    return out, valid


def resize(
    cache: Any, valid: jax.Array, write: jax.Array, batch: int, slots: int
) -> tuple[Any, jax.Array]:
    """The cache with `batch` rows and `slots` slots, the ring unrolled (the slot at `write`,
    the oldest, first)."""
    old_batch, old_slots = valid.shape
    keep = min(batch, old_batch)

    def fit(x: jax.Array, axis: int) -> jax.Array:
        # `write` is traced: one compilation per pair of shapes, not per write slot.
        x = jnp.roll(x[:keep], -write, axis=axis)
        pad = [(0, 0)] * x.ndim
        pad[0], pad[axis] = (0, batch - keep), (0, slots - old_slots)
        return jnp.pad(x, pad)

    cache = {
        name: {part: fit(array, 2) for part, array in layer.items()}
        for name, layer in cache.items()
    }
    return cache, fit(valid, 1)


def halve(cache: Any, valid: jax.Array) -> tuple[Any, jax.Array]:
    """The first half of the rows (the scheduler frees the top ones first)."""
    half: tuple[Any, jax.Array] = jax.tree.map(lambda x: x[: x.shape[0] // 2], (cache, valid))
    return half
