"""Model directories of the JAX backend: a self-contained, Hugging Face compatible layout
(config.json is tunix_rt.models.interchange.model_config's).

    config.json        HF keys (model_type, hidden_size, ...) plus a `tunix_rt` section: family,
                       neutral architecture config, chat template, tokenizer ids, backend, step
    tokenizer.json     the HF `tokenizers` file
    model.safetensors  weights under HF names, float32 (LoRA merged in)

An `adapter` registration instead holds `adapter.safetensors` (LoRA A/B by tunix name) and no base
weights; `load_model_dir` then needs the base directory. A plain Hugging Face Llama / Qwen2 /
Qwen3 checkpoint directory (config.json, *.safetensors, tokenizer.json) loads too.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Unpack

import numpy as np
from flax import nnx

from tunix_rt.models import model_dir as model_dir_lib
from tunix_rt.models.interchange.hf_export import special_ids
from tunix_rt.models.interchange.model_config import (
    ADAPTER_FILE,
    WEIGHTS_FILE,
    ModelDirConfig,
    read_config,
)
from tunix_rt.models.jax import model as model_lib
from tunix_rt.models.jax import weights
from tunix_rt.models.lora import LoraSpec
from tunix_rt.models.model_dir import ModelDirOptions
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer


def _save_weights(
    model: nnx.Module, path: Path, lora: LoraSpec | None, adapter: bool
) -> dict[str, Any]:
    from safetensors.numpy import save_file

    if adapter:
        save_file(weights.lora_params(model), str(path / ADAPTER_FILE), metadata={"format": "np"})
    else:
        lora_scale = lora.alpha / lora.rank if lora else 1.0
        tensors = weights.export_hf(model, lora_scale)
        save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": "pt"})
    return {}


def write_model_dir(
    path: Path,
    model: nnx.Module,
    arch: ArchitectureConfig,
    tokenizer: TextTokenizer,
    **options: Unpack[ModelDirOptions],
) -> Path:
    """Writes the model directory (see the module docstring); returns `path`."""
    save = functools.partial(_save_weights, model)
    return model_dir_lib.write_model_dir(path, arch, tokenizer, "jax", save, **options)


def read_safetensors(path: Path, pattern: str = "*.safetensors") -> dict[str, np.ndarray]:
    """Every tensor of the directory's safetensors files, as float32 numpy arrays."""
    from safetensors.flax import load_file

    tensors: dict[str, np.ndarray] = {}
    files = sorted(path.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no {pattern} in {path}")
    for file in files:
        for name, value in load_file(str(file)).items():
            tensors[name] = np.asarray(value, dtype=np.float32)
    return tensors


def load_weights_into(model: nnx.Module, path: Path) -> None:
    """Fills `model`'s base parameters from the directory's HF-named `model*.safetensors` (one
    file, or the shards of a Hugging Face checkpoint)."""
    weights.load_hf(model, read_safetensors(path, "model*.safetensors"))


def load_model(arch: ArchitectureConfig, path: Path | None) -> nnx.Module:
    """A model of `arch` with the weights of directory `path` (built from shapes only, so no
    random initialisation is wasted)."""
    if path is None:
        raise ValueError("no weights directory")
    model = model_lib.abstract_model(arch)
    load_weights_into(model, path)
    return model


def load_model_dir(
    path: Path, base_dir: Path | None = None
) -> tuple[nnx.Module, TextTokenizer, ModelDirConfig]:
    """(model, tokenizer, config) of a model directory; an adapter directory needs `base_dir`."""
    config = read_config(path)
    # An imported directory's tokenizer need not have our <pad>/<bos>/<eos> tokens: take the ids
    # its config records (when it records none, look our tokens up by name).
    tokenizer_dir = path if (path / "tokenizer.json").exists() or base_dir is None else base_dir
    try:
        ids: dict[str, int] | None = special_ids(config.raw)
    except ValueError:
        ids = None
    tokenizer = TextTokenizer.load(tokenizer_dir, ids)
    if config.adapter is not None and base_dir is None:
        raise ValueError(f"{path} holds a LoRA adapter only; give the base model directory")
    model = load_model(config.architecture, path if config.adapter is None else base_dir)
    if config.adapter is None:
        return model, tokenizer, config
    lora = LoraSpec(
        rank=int(config.adapter["rank"]),
        alpha=float(config.adapter["alpha"]),
        target_modules=tuple(config.adapter["target_modules"]),
    )
    model = model_lib.apply_lora(model, lora, seed=0)
    adapter = read_safetensors(path, ADAPTER_FILE)
    weights.load_lora(model, adapter)
    return model, tokenizer, config
