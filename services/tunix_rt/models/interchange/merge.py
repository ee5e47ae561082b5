"""A model directory's weights under HF names, float32, with any LoRA adapter merged into its base
weights: numpy and safetensors only, so the export and the inference engines can use it without
importing JAX or torch.

Two adapter formats exist. The JAX backend's `adapter.safetensors` holds qwix's A `[in..., r]`
and B `[r, out...]` under tunix names (`layers.0.attn.q_proj.w_lora_a`) with rank and alpha in
`tunix_rt.adapter`; the torch backend's PEFT directory holds `adapter_model.safetensors`
(`...q_proj.lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]`) and `adapter_config.json`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from tunix_rt.models.interchange import layout, names, safetensors_io
from tunix_rt.models.interchange.model_config import ADAPTER_FILE, read_config

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
_PEFT_A = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_A(?:\.[^.]+)?\.weight")


def base_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """The full weights of a non-adapter directory (all shards), float32, without tensors no model
    reads (rotary caches; a tied model's duplicate lm_head)."""
    files = [
        p
        for p in sorted(model_dir.glob("*.safetensors"))
        if p.name not in (ADAPTER_FILE, PEFT_WEIGHTS)
    ]
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {model_dir}")
    tensors = safetensors_io.load_many(files)
    tied = read_config(model_dir).architecture.tie_embeddings
    return {
        name: value
        for name, value in tensors.items()
        if not layout.IGNORED.fullmatch(name) and not (tied and name == layout.LM_HEAD)
    }


def merge_tunix_adapter(
    base: dict[str, np.ndarray], adapter: dict[str, np.ndarray], rank: int, alpha: float
) -> dict[str, np.ndarray]:
    """`base` plus `A @ B * alpha / rank` for each tunix-named qwix adapter pair, in HF layout:
    A `[in..., r]` and B `[r, out...]` make `[prod(in), prod(out)]`, transposed to HF's
    `[out, in]`."""
    merged = dict(base)
    scale = alpha / rank
    for name in sorted(n for n in adapter if n.endswith("_lora_a")):
        target = name.removesuffix("_lora_a")
        hf_name, _ = names.lookup(target)
        a, b = adapter[name], adapter[target + "_lora_b"]
        r = a.shape[-1]
        delta = (a.reshape(-1, r) @ b.reshape(r, -1)).T * scale
        merged[hf_name] = merged[hf_name] + delta.reshape(merged[hf_name].shape)
    return merged


def peft_scale(config: dict[str, Any]) -> float:
    """PEFT's LoRA scaling: alpha / r, or alpha / sqrt(r) with rsLoRA; ValueError for settings
    this merge does not implement."""
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise ValueError(f"adapter_config.json: {key} is not supported")
    if config.get("use_dora"):
        raise ValueError("adapter_config.json: DoRA adapters are not supported")
    if config.get("fan_in_fan_out"):
        raise ValueError("adapter_config.json: fan_in_fan_out adapters are not supported")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def merge_peft_adapter(
    base: dict[str, np.ndarray], adapter: dict[str, np.ndarray], scale: float
) -> dict[str, np.ndarray]:
    """`base` plus `B @ A * scale` for each PEFT LoRA pair (already in HF's `[out, in]`)."""
    merged = dict(base)
    for name in sorted(adapter):
        match = _PEFT_A.fullmatch(name)
        if match is None:
            continue
        target = match["module"] + ".weight"
        if target not in merged:
            raise KeyError(f"adapter tensor {name} targets {target}, which the base lacks")
        b = adapter[name.replace(".lora_A", ".lora_B")]
        merged[target] = merged[target] + (b @ adapter[name]) * scale
    return merged


def load_merged(model_dir: Path, base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """{HF name: float32 array} of a model directory; an adapter directory (either format) is
    merged into the weights of `base_dir` (ValueError without it)."""
    config = read_config(model_dir)
    if config.adapter is None:
        return base_weights(model_dir)
    if base_dir is None:
        raise ValueError(f"{model_dir} holds a LoRA adapter only; give the base model directory")
    base = load_merged(base_dir)
    if config.adapter.get("format") == "peft":
        peft_config = json.loads((model_dir / PEFT_CONFIG).read_text())
        adapter = safetensors_io.load(model_dir / PEFT_WEIGHTS)
        return merge_peft_adapter(base, adapter, peft_scale(peft_config))
    adapter = safetensors_io.load(model_dir / ADAPTER_FILE)
    rank, alpha = int(config.adapter["rank"]), float(config.adapter["alpha"])
    return merge_tunix_adapter(base, adapter, rank, alpha)
