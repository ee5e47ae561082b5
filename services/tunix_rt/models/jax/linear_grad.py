"""A dense layer whose weight gradient XLA on CPU computes without a slow transposing fusion.

`nnx.Linear` computes `x @ W` with `lax.dot_general`; JAX's transpose rule then asks for
`dW = x^T @ g` (contracting the token dimension of both). XLA on CPU lays that dot out by
transposing `g` ([tokens, out]: the larger operand, 4 MB for an MLP projection at batch 8 x 128)
and fuses the transpose into the elementwise backward of the SiLU that produces `g`. That fusion
writes its output strided and ran ~15 ms per MLP layer of a ~190 ms llama3-2.5m step (a third of
the JAX backend's gap to torch, profiled with `jax.profiler`; docs/benchmarks.md, issue 15).

Here the backward transposes `x` instead (the smaller operand: [tokens, in]) into a buffer of its
own, behind an optimization barrier so XLA cannot fold the transpose back into the dot: the dot
is then a plain row-major `[in, tokens] @ [tokens, out]`. Same arithmetic (float32 sums of the
same products), same forward.

LoRA models keep `lax.dot_general`: qwix finds the layers it adapts by intercepting that call.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


@jax.custom_vjp
def _linear(x: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.einsum("...i,io->...o", x, w)


def _forward(x: jax.Array, w: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _linear(x, w), (x, w)


def _backward(saved: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = saved
    dx = jnp.einsum("...o,io->...i", g, w)
    rows = x.reshape(-1, x.shape[-1])
    # [in, tokens] in a buffer of its own: without the barrier XLA folds the transpose back in.
    x_t = jax.lax.optimization_barrier(rows.T)  # type: ignore[no-untyped-call]
    dw = x_t @ g.reshape(-1, g.shape[-1])
    return dx.astype(x.dtype), dw.astype(w.dtype)


_linear.defvjp(_forward, _backward)


def dot_general(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """`lax.dot_general` for `nnx.Linear`'s one shape (the last axis of the input against a 2-D
    kernel); anything else goes to `lax.dot_general` unchanged."""
    (lhs_contract, rhs_contract), batch = dimension_numbers
    plain = (
        tuple(lhs_contract) == (lhs.ndim - 1,)
        and tuple(rhs_contract) == (0,)
        and batch == ((), ())
        and rhs.ndim == 2
        and precision is None
        and preferred_element_type is None
        and out_sharding is None
    )
    if not plain:
        return jax.lax.dot_general(
            lhs,
            rhs,
            dimension_numbers,
            precision=precision,
            preferred_element_type=preferred_element_type,
            out_sharding=out_sharding,
        )
    return _linear(lhs, rhs)


def install(model: nnx.Module) -> None:
    """Every `nnx.Linear` of `model` (the MLP's projections) computes through `dot_general`."""
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Linear):
            node.dot_general = dot_general
