"""Model directories: a self-contained, Hugging Face compatible layout.

    config.json        HF keys (model_type, hidden_size, ...) plus a `tunix_rt` section: family,
                       neutral architecture config, chat template, tokenizer ids, backend, step
    tokenizer.json     the HF `tokenizers` file
    model.safetensors  weights under HF names, float32 (LoRA merged in)

An `adapter` registration instead holds `adapter.safetensors` (LoRA A/B by tunix name) and no base
weights; `load_model_dir` then needs the base directory. A plain Hugging Face Llama / Qwen2 /
Qwen3 checkpoint directory (config.json, *.safetensors, tokenizer.json) loads too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from tunix_rt.training.backends.jax import model as model_lib
from tunix_rt.training.backends.jax import weights
from tunix_rt.training.presets import ArchitectureConfig
from tunix_rt.training.spec import LoraSpec
from tunix_rt.training.tokenizer import TextTokenizer, special_ids_from_config

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ADAPTER_FILE = "adapter.safetensors"
FORMAT_VERSION = 1

_HF_TYPES = {  # family -> (model_type, architectures)
    "llama3": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
}


@dataclass(frozen=True)
class ModelDirConfig:
    """What a model directory says about its model."""

    architecture: ArchitectureConfig
    chat_template: str = "plain"
    backend: str = "jax"
    training_step: int = 0
    # Set for an adapter-only directory: {"rank", "alpha", "target_modules", "base"}.
    adapter: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the whole config.json


def hf_config(arch: ArchitectureConfig, tokenizer: TextTokenizer) -> dict[str, Any]:
    """The Hugging Face config.json keys of `arch`."""
    model_type, architecture = _HF_TYPES[arch.family]
    config: dict[str, Any] = {
        "architectures": [architecture],
        "model_type": model_type,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.num_layers,
        "num_attention_heads": arch.num_heads,
        "num_key_value_heads": arch.num_kv_heads,
        "head_dim": arch.head_dim,
        "vocab_size": arch.vocab_size,
        "max_position_embeddings": arch.context_length,
        "rope_theta": arch.rope_theta,
        "rms_norm_eps": arch.norm_eps,
        "tie_word_embeddings": arch.tie_embeddings,
        "hidden_act": "silu",
        "bos_token_id": tokenizer.bos_id(),
        "eos_token_id": tokenizer.eos_id(),
        "pad_token_id": tokenizer.pad_id(),
        "torch_dtype": "float32",
    }
    if arch.family == "llama3":
        config.update(attention_bias=False, mlp_bias=False)
    return config


def architecture_from_hf(config: dict[str, Any]) -> ArchitectureConfig:
    """The neutral config of a Hugging Face config.json (Llama, Qwen2 or Qwen3)."""
    families = {"llama": "llama3", "qwen2": "qwen2", "qwen3": "qwen3"}
    model_type = config.get("model_type", "")
    if model_type not in families:
        raise ValueError(f"unsupported model_type {model_type!r}; expected one of {families}")
    heads = int(config["num_attention_heads"])
    return ArchitectureConfig(
        family=families[model_type],
        num_layers=int(config["num_hidden_layers"]),
        hidden_size=int(config["hidden_size"]),
        intermediate_size=int(config["intermediate_size"]),
        num_heads=heads,
        num_kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or config["hidden_size"] // heads),
        vocab_size=int(config["vocab_size"]),
        context_length=int(config.get("max_position_embeddings", 2048)),
        rope_theta=float(config.get("rope_theta", 1_000_000.0)),
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def read_config(path: Path) -> ModelDirConfig:
    """Parses `path/config.json` (ours or a Hugging Face one)."""
    raw = json.loads((path / CONFIG_FILE).read_text())
    ours = raw.get("tunix_rt")
    if ours is None:
        return ModelDirConfig(architecture_from_hf(raw), raw=raw, backend="")
    return ModelDirConfig(
        architecture=ArchitectureConfig.from_json(ours["architecture"]),
        chat_template=ours.get("chat_template", "plain"),
        backend=ours.get("backend", "jax"),
        training_step=int(ours.get("training_step", 0)),
        adapter=ours.get("adapter"),
        raw=raw,
    )


def write_model_dir(
    path: Path,
    model: nnx.Module,
    arch: ArchitectureConfig,
    tokenizer: TextTokenizer,
    *,
    chat_template: str,
    training_step: int,
    lora: LoraSpec | None = None,
    lora_mode: str = "merged",
    base: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes the model directory (see the module docstring); returns `path`."""
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    ours: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "family": arch.family,
        "architecture": arch.to_json(),
        "chat_template": chat_template,
        "tokenizer": tokenizer.describe(),
        "backend": "jax",
        "training_step": training_step,
        **(extra or {}),
    }
    lora_scale = lora.alpha / lora.rank if lora else 1.0
    if lora is not None and lora_mode == "adapter":
        ours["adapter"] = {
            "rank": lora.rank,
            "alpha": lora.alpha,
            "target_modules": list(lora.target_modules),
            "base": base,
        }
        save_file(weights.lora_params(model), str(path / ADAPTER_FILE), metadata={"format": "np"})
    else:
        tensors = weights.export_hf(model, lora_scale)
        save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {**hf_config(arch, tokenizer), "tunix_rt": ours}
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save(path)
    return path


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
    tokenizer = TextTokenizer.load(path, special_ids_from_config(config.raw))
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
