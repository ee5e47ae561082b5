"""tunix models from neutral architecture configs: random init, LoRA, precision.

tunix 0.1.7's llama3 / qwen2 / qwen3 initialise their MLP kernels with zeros, so the MLP's
gradients are zero and it never learns; `create_model` re-initialises every `nnx.Linear` kernel
(the MLP's gate, up and down projections) with N(0, 1/fan_in), as the research notes measured.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tunix_rt.models.lora import LORA_MODULES, LoraSpec
from tunix_rt.models.presets import ArchitectureConfig

# The backend-neutral LoRA module names are also the tunix module names of all three families
# (`layers.N.attn.{q,k,v,o}_proj`, `layers.N.mlp.{gate,up,down}_proj`).
LORA_TARGETS: dict[str, str] = {name: name for name in LORA_MODULES}


# tunix 0.1.7's llama3 and qwen3 attention call `apply_rope` without the config's rope_theta, so
# they always rotate with this base (rotate-half layout, no scaling); qwen2 honours the config.
FIXED_ROPE_THETA = {"llama3": 1_000_000.0, "qwen3": 1_000_000.0}


def tunix_config(arch: ArchitectureConfig) -> Any:
    """The tunix ModelConfig of `arch`'s family; ValueError when tunix would silently compute a
    different function (a rotary base its llama3 / qwen3 ignore)."""
    fixed = FIXED_ROPE_THETA.get(arch.family)
    if fixed is not None and arch.rope_theta != fixed:
        raise ValueError(
            f"rope_theta {arch.rope_theta:g} is not supported by the JAX backend's {arch.family} "
            f"(tunix always uses {fixed:g}); use the torch backend for this model"
        )
    common = dict(
        num_layers=arch.num_layers,
        vocab_size=arch.vocab_size,
        embed_dim=arch.hidden_size,
        hidden_dim=arch.intermediate_size,
        num_heads=arch.num_heads,
        head_dim=arch.head_dim,
        num_kv_heads=arch.num_kv_heads,
        rope_theta=int(arch.rope_theta),
        norm_eps=arch.norm_eps,
    )
    if arch.family == "llama3":
        from tunix.models.llama3 import model as llama3

        return llama3.ModelConfig(**common, weight_tying=arch.tie_embeddings)
    if arch.family == "qwen2":
        from tunix.models.qwen2 import model as qwen2

        return qwen2.ModelConfig(**common, use_tied_embedding=arch.tie_embeddings)
    if arch.family == "qwen3":
        from tunix.models.qwen3 import model as qwen3

        return qwen3.ModelConfig(**common, use_tied_embedding=arch.tie_embeddings)
    raise ValueError(f"unknown model family {arch.family!r}")


def _model_class(family: str) -> Any:
    if family == "llama3":
        from tunix.models.llama3 import model as llama3

        return llama3.Llama3
    if family == "qwen2":
        from tunix.models.qwen2 import model as qwen2

        return qwen2.Qwen2
    from tunix.models.qwen3 import model as qwen3

    return qwen3.Qwen3


def create_model(arch: ArchitectureConfig, seed: int) -> nnx.Module:
    """A randomly initialised model; the same seed gives the same weights."""
    model: nnx.Module = _model_class(arch.family)(tunix_config(arch), rngs=nnx.Rngs(params=seed))
    key = jax.random.key(seed + 1)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Linear):
            key, sub = jax.random.split(key)
            shape = node.kernel.get_value().shape  # [in, out]
            node.kernel[...] = jax.random.normal(sub, shape) / math.sqrt(shape[0])
    return model


def abstract_model(arch: ArchitectureConfig) -> nnx.Module:
    """The model's structure with shapes only (no memory), for loading weights into."""
    cls, config = _model_class(arch.family), tunix_config(arch)
    abstract: nnx.Module = nnx.eval_shape(lambda: cls(config, rngs=nnx.Rngs(params=0)))
    return abstract


def parameter_count(model: nnx.Module, kind: Any = nnx.Param) -> int:
    """Elements of the model's parameters of `kind` (nnx.Param counts LoRA params too)."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, kind))))


def trainable_parameter_count(model: nnx.Module) -> int:
    """LoRA parameters when the model has adapters, else every parameter."""
    lora = parameter_count(model, nnx.LoRAParam)
    return lora or parameter_count(model)


def apply_lora(model: nnx.Module, lora: LoraSpec, seed: int) -> nnx.Module:
    """`model` with LoRA adapters (qwix) on the named modules; A random, B zero, so the adapted
    model starts equal to the base. Dropout on the adapter input is not supported here: qwix
    applies it at generation time too, so job submission refuses it (training.job_spec)."""
    import qwix

    unknown = sorted(set(lora.target_modules) - set(LORA_TARGETS))
    if unknown:
        raise ValueError(f"unknown LoRA target modules {unknown}")
    names = "|".join(LORA_TARGETS[m] for m in lora.target_modules)
    provider = qwix.LoraProvider(module_path=f".*({names})", rank=lora.rank, alpha=lora.alpha)
    length = 8
    dummy = dict(
        input_tokens=jnp.ones((1, length), jnp.int32),  # [B, T]
        positions=jnp.arange(length)[None],  # [B, T]
        cache=None,
        attention_mask=jnp.tril(jnp.ones((length, length), bool))[None],  # [B, T, T]
    )
    adapted: nnx.Module = qwix.apply_lora_to_model(model, provider, rngs=nnx.Rngs(seed), **dummy)
    return adapted


def cast_floating(model: nnx.Module, dtype: Any) -> None:
    """Stores every floating-point parameter of `model` as `dtype` (pure bfloat16 training)."""
    state = nnx.state(model)
    cast = jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, state
    )
    nnx.update(model, cast)


def compute_dtype(precision: str, platform: str) -> Any:
    """The dtype matmuls run in: bfloat16 for `mixed_bfloat16`/`bfloat16`, and for `auto` on a
    GPU or TPU; float32 otherwise (CPU has no fast bfloat16 path)."""
    if precision in ("mixed_bfloat16", "bfloat16"):
        return jnp.bfloat16
    if precision == "auto" and platform in ("gpu", "tpu", "cuda", "rocm"):
        return jnp.bfloat16
    return jnp.float32
