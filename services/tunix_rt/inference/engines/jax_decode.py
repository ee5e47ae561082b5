"""One decode step of a tunix llama3 / qwen2 / qwen3 model over our own KV-cache layout.

tunix's attention keeps the cache as [batch, slots, kv_heads, head_dim] and contracts it with
`einsum('BTHGD,BSHD->BHGTS')`, which XLA on CPU lowers to a transpose of the whole cache (keys
and values, every layer) before each dot: a decode step then costs O(batch x slots) in copies,
far more than its arithmetic. Here the cache is [batch, kv_heads, slots, head_dim], so both
attention dots read it in place as a batched matmul over (batch, kv_heads).

Everything but the attention core is the tunix model's own modules (embedder, norms,
projections, rotary embedding, MLP, head), called in the order the tunix layer calls them, so
the logits are the tunix model's up to the summation order inside the two attention dots.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

# tunix's masked-score value (the same in all three families).
K_MASK = -2.3819763e38

LayerCache = dict[str, jax.Array]  # "k", "v": [batch, kv_heads, slots, head_dim]


def _project(attn: Any, family: str, x: jax.Array, positions: jax.Array) -> tuple[Any, Any, Any]:
    """Rotated queries [B, T, N, H] and keys, values [B, T, K, H], as the family's attention
    block computes them before it touches its cache."""
    if family == "qwen2":
        from tunix.models.qwen2 import model as qwen2

        dtype = attn.config.dtype

        def biased(proj: Any, bias: Any) -> jax.Array:
            out = proj(x)
            b, t, n, h = out.shape
            return jnp.reshape(jnp.reshape(out, (b, t, n * h)) + bias.astype(dtype), out.shape)

        q = biased(attn.q_proj, attn.q_bias[...])
        k = biased(attn.k_proj, attn.k_bias[...])
        v = biased(attn.v_proj, attn.v_bias[...])
        sin, cos = qwen2._generate_pos_embeddings(
            positions, attn.config.head_dim, attn.config.rope_theta
        )
        # The model casts sin/cos to its activations' dtype (that of the embeddings).
        sin, cos = sin.astype(x.dtype), cos.astype(x.dtype)
        return (
            qwen2.apply_rotary_embedding(q, sin, cos),
            qwen2.apply_rotary_embedding(k, sin, cos),
            v,
        )
    if family == "qwen3":
        from tunix.models.qwen3 import model as rope_lib

        q, k = attn.q_norm(attn.q_proj(x)), attn.k_norm(attn.k_proj(x))
    else:
        from tunix.models.llama3 import model as rope_lib

        q, k = attn.q_proj(x), attn.k_proj(x)
    v = attn.v_proj(x)
    head_dim = attn.head_dim
    return (
        rope_lib.apply_rope(q, positions, head_dim=head_dim),
        rope_lib.apply_rope(k, positions, head_dim=head_dim),
        v,
    )


def attend(q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array, scale: float) -> jax.Array:
    """Attention of one query per row: q [B, N, H] over k, v [B, K, S, H] where `valid`
    [B, S]; [B, N, H]. The arithmetic of tunix's (scale after the dot, K_MASK, float32
    softmax cast back to the cache dtype)."""
    b, n, h = q.shape
    kv_heads = k.shape[1]
    grouped = q.reshape((b, kv_heads, n // kv_heads, h))
    scores = jnp.einsum("BKGH,BKSH->BKGS", grouped, k) * scale
    scores = jnp.where(valid[:, None, None, :], scores, K_MASK)
    probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(k.dtype)
    out = jnp.einsum("BKGS,BKSH->BKGH", probs, v)
    return out.reshape((b, n, h))


def decode_step(
    model: Any,
    family: str,
    tokens: jax.Array,
    positions: jax.Array,
    cache: dict[str, LayerCache],
    valid: jax.Array,
    write: jax.Array,
) -> tuple[jax.Array, dict[str, LayerCache]]:
    """Logits [B, V] of one token per row (`tokens`, `positions`: [B]) whose key and value are
    written at slot `write` of every row; `valid` [B, S] (already marking `write` for the
    active rows) says which slots each row attends to."""
    x = model.embedder.encode(tokens[:, None])  # [B, 1, D]
    new_cache: dict[str, LayerCache] = {}
    for i, layer in enumerate(model.layers):
        name = f"layer_{i}"
        attn = layer.attn
        q, k, v = _project(attn, family, layer.input_layernorm(x), positions[:, None])
        at = (0, 0, write, 0)
        keys = jax.lax.dynamic_update_slice(cache[name]["k"], k.transpose(0, 2, 1, 3), at)
        values = jax.lax.dynamic_update_slice(cache[name]["v"], v.transpose(0, 2, 1, 3), at)
        new_cache[name] = {"k": keys, "v": values}
        out = attend(q[:, 0], keys, values, valid, attn.scale)
        attn_output = attn.o_proj(out[:, None]) + x
        x = attn_output + layer.mlp(layer.post_attention_layernorm(attn_output))
    x = model.final_norm(x)
    head = getattr(model, "lm_head", None)
    logits = model.embedder.decode(x) if head is None else head(x)
    return logits[:, 0], new_cache
