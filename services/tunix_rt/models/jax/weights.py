"""Parameter names between tunix models and Hugging Face checkpoints, and LoRA merging.

Model directories store weights under Hugging Face Llama / Qwen2 / Qwen3 names and layouts
(`model.layers.0.self_attn.q_proj.weight`, `[out, in]`), so `transformers` (and with it the
torch backend and engine) reads them as they are, and a Hugging Face checkpoint directory loads
here. The name table (tunix path -> HF name, and where the tunix array splits into input and
output dimensions) is `tunix_rt.models.interchange.names`, shared with the framework-free adapter
merging.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from flax import nnx

from tunix_rt.models.interchange import names

_LORA_SUFFIX = names.LORA_SUFFIX
_lookup = names.lookup


def _path_name(path: tuple[object, ...]) -> str:
    """`layers.0.attn.q_proj.w` from a pytree path (dict keys, list indices, `.value`)."""
    parts = []
    for entry in path:
        for attribute in ("key", "idx", "name"):
            if hasattr(entry, attribute):
                parts.append(str(getattr(entry, attribute)))
                break
    return ".".join(p for p in parts if p != "value")


def to_hf(tunix_name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """(HF name, HF-layout array) of one tunix parameter."""
    name, split = _lookup(tunix_name)
    if split is None:
        return name, value
    rows = int(np.prod(value.shape[:split]))
    return name, np.ascontiguousarray(value.reshape(rows, -1).T)  # [out, in]


def from_hf(tunix_name: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The tunix-layout array of shape `shape` from an HF-layout one."""
    _, split = _lookup(tunix_name)
    if split is None:
        return value.reshape(shape)
    return np.ascontiguousarray(value.T).reshape(shape)


def merged_params(model: nnx.Module, lora_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Every base parameter by tunix name, with LoRA deltas `A @ B * lora_scale` merged in
    (`lora_scale` = alpha / rank).

    qwix keeps `w_lora_a` `[in..., r]` and `w_lora_b` `[r, out...]` beside a weight `w` of shape
    `[in..., out...]`, so the delta is `A.reshape(-1, r) @ B.reshape(r, -1)` in `w`'s shape.
    """
    base: dict[str, np.ndarray] = {}
    for path, value in jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]:
        name = _path_name(path)
        if not _LORA_SUFFIX.search(name):
            base[name] = np.asarray(jax.device_get(value), dtype=np.float32)
    lora = lora_params(model)
    for name in [n for n in lora if n.endswith("_lora_a")]:
        target = name.removesuffix("_lora_a")
        a, b = lora[name], lora[target + "_lora_b"]
        rank = a.shape[-1]
        delta = (a.reshape(-1, rank) @ b.reshape(rank, -1)).reshape(base[target].shape)
        base[target] = base[target] + delta * lora_scale
    return base


def lora_params(model: nnx.Module) -> dict[str, np.ndarray]:
    """The LoRA A and B matrices by tunix name (`...q_proj.w_lora_a`); empty without LoRA."""
    state = nnx.state(model, nnx.LoRAParam)
    return {
        _path_name(path): np.asarray(jax.device_get(value), dtype=np.float32)
        for path, value in jax.tree_util.tree_flatten_with_path(state)[0]
    }


def export_hf(model: nnx.Module, lora_scale: float = 1.0) -> dict[str, np.ndarray]:
    """The model's weights (LoRA merged) under HF names and layouts, float32."""
    merged = merged_params(model, lora_scale)
    return dict(to_hf(name, value) for name, value in sorted(merged.items()))


def load_hf(model: nnx.Module, tensors: Mapping[str, np.ndarray]) -> None:
    """Fills `model`'s base parameters from HF-named tensors; KeyError naming what is missing."""
    state = nnx.state(model, nnx.Param)
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    leaves = []
    missing = []
    for path, value in flat:
        name = _path_name(path)
        if _LORA_SUFFIX.search(name):
            leaves.append(value)
            continue
        hf_name, _ = _lookup(name)
        if hf_name not in tensors:
            missing.append(hf_name)
            continue
        array = from_hf(name, np.asarray(tensors[hf_name]), tuple(value.shape))
        leaves.append(jax.numpy.asarray(array, dtype=value.dtype))
    if missing:
        raise KeyError(f"weights missing from the checkpoint: {', '.join(missing[:5])}")
    nnx.update(model, jax.tree_util.tree_unflatten(treedef, leaves))


def load_lora(model: nnx.Module, tensors: Mapping[str, np.ndarray]) -> None:
    """Fills `model`'s LoRA parameters from tensors named as `lora_params` names them."""
    state = nnx.state(model, nnx.LoRAParam)
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    leaves = []
    for path, value in flat:
        name = _path_name(path)
        if name not in tensors:
            raise KeyError(f"adapter weight {name!r} missing")
        leaves.append(jax.numpy.asarray(tensors[name], dtype=value.dtype).reshape(value.shape))
    nnx.update(model, jax.tree_util.tree_unflatten(treedef, leaves))
