"""The config.json of a model directory: Hugging Face keys plus a `tunix_rt` section.

One definition for every backend, so a directory written by the JAX backend, the torch backend
or an import describes its architecture the same way (the neutral ArchitectureConfig), and
`transformers` reads the Hugging Face keys of any of them.

    config.json        HF keys (model_type, hidden_size, ...) plus a `tunix_rt` section: family,
                       neutral architecture config, chat template, tokenizer ids, backend, step
    tokenizer.json     the HF `tokenizers` file
    model.safetensors  weights under HF names, float32 (LoRA merged in)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunix_rt.models.presets import ArchitectureConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ADAPTER_FILE = "adapter.safetensors"
FORMAT_VERSION = 1

HF_TYPES = {  # family -> (model_type, architectures)
    "llama3": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
}
FAMILIES = {model_type: family for family, (model_type, _) in HF_TYPES.items()}


@dataclass(frozen=True)
class ModelDirConfig:
    """What a model directory says about its model."""

    architecture: ArchitectureConfig
    chat_template: str = "plain"
    backend: str = "jax"
    training_step: int = 0
    # Set for an adapter-only directory: {"rank", "alpha", "target_modules", "base", ...}.
    adapter: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the whole config.json


def hf_config(arch: ArchitectureConfig, *, bos_id: int, eos_id: int, pad_id: int) -> dict[str, Any]:
    """The Hugging Face config.json keys of `arch`."""
    model_type, architecture = HF_TYPES[arch.family]
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
        # Both spellings: transformers 5 reads `rope_parameters`, older versions `rope_theta`.
        "rope_theta": arch.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": arch.rope_theta},
        "rms_norm_eps": arch.norm_eps,
        "tie_word_embeddings": arch.tie_embeddings,
        "hidden_act": "silu",
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": "float32",
    }
    if arch.family == "llama3":
        config.update(attention_bias=False, mlp_bias=False)
    return config


class ConfigKeyError(ValueError):
    """A config.json key whose value cannot describe a model."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        self.key = key


# The sizes of ArchitectureConfig that must be positive integers (shapes, and divisors).
SIZE_FIELDS = (
    "num_layers",
    "hidden_size",
    "intermediate_size",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "vocab_size",
)


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _size(config: dict[str, Any], key: str, default: int | None = None) -> int:
    """config[key] (`default` when absent or null) as a positive integer."""
    value = config.get(key)
    if value is None:
        value = default
    if not isinstance(value, int) or not _is_size(value):
        raise ConfigKeyError(key, f"must be a positive integer, got {config.get(key)!r}")
    return value


def size_problems(arch: ArchitectureConfig) -> list[tuple[str, str]]:
    """(field, why) for each size of `arch` that is not a positive integer (a `tunix_rt` section
    is read with no type checks; zero heads would divide by zero further on)."""
    return [
        (name, f"must be a positive integer, got {getattr(arch, name)!r}")
        for name in SIZE_FIELDS
        if not _is_size(getattr(arch, name))
    ]


def hf_special_ids(config: dict[str, Any]) -> dict[str, int] | None:
    """bos/eos/pad ids from a config.json's Hugging Face keys (the first eos of a list; pad
    defaults to eos, as many Llama checkpoints leave it unset); None unless bos and eos are set."""
    bos, eos = config.get("bos_token_id"), config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    if bos is None or eos is None:
        return None
    pad = config.get("pad_token_id")
    return {"bos": int(bos), "eos": int(eos), "pad": int(eos if pad is None else pad)}


def architecture_from_hf(config: dict[str, Any]) -> ArchitectureConfig:
    """The neutral config of a Hugging Face config.json (Llama, Qwen2 or Qwen3); ValueError for
    another architecture, ConfigKeyError for a size that is not a positive integer."""
    model_type = config.get("model_type", "")
    if model_type not in FAMILIES:
        raise ValueError(
            f"unsupported model_type {model_type!r}; expected one of {sorted(FAMILIES)}"
        )
    heads = _size(config, "num_attention_heads")
    hidden = _size(config, "hidden_size")
    return ArchitectureConfig(
        family=FAMILIES[model_type],
        num_layers=_size(config, "num_hidden_layers"),
        hidden_size=hidden,
        intermediate_size=_size(config, "intermediate_size"),
        num_heads=heads,
        num_kv_heads=_size(config, "num_key_value_heads", heads),
        head_dim=_size(config, "head_dim", hidden // heads),
        vocab_size=_size(config, "vocab_size"),
        context_length=int(config.get("max_position_embeddings", 2048)),
        rope_theta=rope_theta(config),
        norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """The rotary settings of a Hugging Face config: transformers 5 writes `rope_parameters`,
    older versions `rope_theta` and `rope_scaling` at the top level."""
    params = config.get("rope_parameters")
    if isinstance(params, dict):
        return params
    scaling = config.get("rope_scaling")
    out: dict[str, Any] = dict(scaling) if isinstance(scaling, dict) else {}
    out.setdefault("rope_type", out.get("type", "default"))
    if "rope_theta" in config:
        out["rope_theta"] = config["rope_theta"]
    return out


def rope_theta(config: dict[str, Any]) -> float:
    """The rotary base of a Hugging Face config (transformers' default 10000 when unset)."""
    return float(rope_parameters(config).get("rope_theta", 10_000.0))


def unsupported_features(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(config key, why) for each setting of a Hugging Face config that the neutral
    ArchitectureConfig cannot describe, so neither backend would compute the same function."""
    problems: list[tuple[str, str]] = []
    rope_type = rope_parameters(config).get("rope_type", "default")
    if rope_type not in (None, "default"):
        problems.append(("rope_parameters", f"rope scaling {rope_type!r} is not supported"))
    act = config.get("hidden_act", "silu")
    if act != "silu":
        problems.append(("hidden_act", f"{act!r} is not supported (SwiGLU with silu only)"))
    model_type = config.get("model_type")
    if model_type in ("llama", "qwen3") and config.get("attention_bias"):
        problems.append(("attention_bias", "attention biases are not supported for " + model_type))
    if config.get("mlp_bias"):
        problems.append(("mlp_bias", "MLP biases are not supported"))
    if config.get("use_sliding_window"):
        problems.append(("use_sliding_window", "sliding-window attention is not supported"))
    return problems


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


def write_config(
    path: Path,
    arch: ArchitectureConfig,
    *,
    tokenizer_ids: dict[str, int],
    tokenizer_description: dict[str, Any],
    backend: str,
    chat_template: str,
    training_step: int,
    adapter: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes `path/config.json` (sorted keys, so the bytes are deterministic); `tokenizer_ids`
    holds `bos`, `eos` and `pad`."""
    ours: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "family": arch.family,
        "architecture": arch.to_json(),
        "chat_template": chat_template,
        "tokenizer": tokenizer_description,
        "backend": backend,
        "training_step": training_step,
        **(extra or {}),
    }
    if adapter is not None:
        ours["adapter"] = adapter
    hf = hf_config(
        arch,
        bos_id=tokenizer_ids["bos"],
        eos_id=tokenizer_ids["eos"],
        pad_id=tokenizer_ids["pad"],
    )
    path.mkdir(parents=True, exist_ok=True)
    target = path / CONFIG_FILE
    target.write_text(json.dumps({**hf, "tunix_rt": ours}, indent=2, sort_keys=True) + "\n")
    return target
