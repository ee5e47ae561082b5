"""The JAX backend's dense layers (models/jax/linear_grad.py): same function, same gradients."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tunix_rt.models import presets
from tunix_rt.models.jax import linear_grad
from tunix_rt.models.jax import model as model_lib

# flax and jax deprecate what tunix 0.1.7 (pinned, third-party) calls in its models.
pytestmark = [
    pytest.mark.filterwarnings(f"ignore:{message}:DeprecationWarning")
    for message in (
        "'sharding' is deprecated, use 'out_sharding'",
        "jax.interpreters.pxla.thread_resources is deprecated",
        "'.value' access is now deprecated",
    )
]


def _inputs(length: int = 16) -> dict[str, Any]:
    tokens = jax.random.randint(jax.random.key(3), (2, length), 0, 500)
    return dict(
        input_tokens=tokens,
        positions=jnp.broadcast_to(jnp.arange(length), (2, length)),
        cache=None,
        attention_mask=jnp.tril(jnp.ones((length, length), bool))[None].repeat(2, 0),
    )


def _loss_and_grads(model: nnx.Module) -> tuple[jax.Array, Any]:
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
    inputs = _inputs()

    def loss(p: Any) -> jax.Array:
        logits, _ = nnx.merge(graphdef, p, rest)(**inputs)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 0] ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    return value, grads


def test_installed_layers_give_the_plain_models_loss_and_gradients() -> None:
    arch = presets.get("llama3-tiny").config
    plain = model_lib.create_model(arch, seed=0)
    fast = model_lib.create_model(arch, seed=0)
    linear_grad.install(fast)
    linears = [n for _, n in nnx.iter_graph(fast) if isinstance(n, nnx.Linear)]
    assert linears and all(n.dot_general is linear_grad.dot_general for n in linears)

    loss_plain, grads_plain = _loss_and_grads(plain)
    loss_fast, grads_fast = _loss_and_grads(fast)
    np.testing.assert_allclose(loss_fast, loss_plain, rtol=1e-6)
    flat_plain = dict(jax.tree_util.tree_leaves_with_path(grads_plain))
    flat_fast = dict(jax.tree_util.tree_leaves_with_path(grads_fast))
    assert flat_plain.keys() == flat_fast.keys()
    mlp = [path for path in flat_plain if "mlp" in jax.tree_util.keystr(path)]
    assert mlp, "the MLP's kernels are among the gradients"
    for path, expected in flat_plain.items():
        assert float(jnp.abs(expected).max()) > 0 or path not in mlp
        np.testing.assert_allclose(
            flat_fast[path], expected, rtol=1e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path)
        )


@pytest.mark.parametrize(
    ("lhs_shape", "rhs_shape", "numbers", "kwargs"),
    [
        ((2, 3, 4), (4, 5), (((2,), (0,)), ((), ())), {}),
        ((2, 3, 4), (4, 5), (((2,), (0,)), ((), ())), {"preferred_element_type": jnp.float32}),
        ((2, 3, 4), (4, 5), (((2,), (0,)), ((), ())), {"precision": jax.lax.Precision.HIGHEST}),
        ((3, 4), (5, 4), (((1,), (1,)), ((), ())), {}),
        ((2, 3, 4), (2, 4, 5), (((2,), (1,)), ((0,), (0,))), {}),
    ],
)
def test_dot_general_computes_what_lax_dot_general_does(
    lhs_shape: tuple[int, ...],
    rhs_shape: tuple[int, ...],
    numbers: Any,
    kwargs: dict[str, Any],
) -> None:
    lhs = jax.random.normal(jax.random.key(0), lhs_shape)
    rhs = jax.random.normal(jax.random.key(1), rhs_shape)

    def grads(dot: Any) -> Any:
        return jax.grad(lambda a, b: jnp.sum(jnp.sin(dot(a, b, numbers, **kwargs))), (0, 1))(
            lhs, rhs
        )

    np.testing.assert_allclose(
        linear_grad.dot_general(lhs, rhs, numbers, **kwargs),
        jax.lax.dot_general(lhs, rhs, numbers, **kwargs),
        rtol=1e-6,
    )
    expected = grads(jax.lax.dot_general)
    for ours, theirs in zip(grads(linear_grad.dot_general), expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
