"""Loading a model directory into an engine, and sizing it before a load.

Backend "" picks the engine measured fastest for the framework the directory was saved from
(`DEFAULT_ENGINE`; bench/inference_generate.py measures both); "jax" or "torch" forces one. Both
engines read any directory, since weights are stored under Hugging Face names. An adapter
directory is merged onto its base directory first (`tunix_rt.models.interchange.merge`), so both
engines serve adapters of either framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument
from tunix_rt.inference.engines.base import Engine, kv_cache_bytes
from tunix_rt.models.interchange import merge
from tunix_rt.models.interchange.model_config import ModelDirConfig, read_config
from tunix_rt.models.presets import parameter_count
from tunix_rt.models.tokenizer import TextTokenizer, special_ids_from_config

BACKENDS = ("jax", "torch")
# Engine per saved backend, by measurement (bench/inference_generate.py, 2-core CPU): the JAX
# engine's compiled decode step beats the torch engine's eager loop on both kinds of directory.
DEFAULT_ENGINE = {"jax": "jax", "torch": "jax", "": "jax"}
PRECISIONS = ("auto", "float32", "bfloat16")
KV_RESERVE_ROWS = 32  # the engines' batch capacity: the KV cache they may grow to


def engine_backend(config: ModelDirConfig, backend: str) -> str:
    if backend and backend not in BACKENDS:
        raise InvalidArgument(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    return backend or DEFAULT_ENGINE.get(config.backend, "jax")


def estimate_memory_bytes(model_dir: Path, backend: str = "") -> int:
    """Bytes the loaded engine will hold (weights plus its KV-cache reserve), from config.json
    and the safetensors sizes, without loading anything."""
    config = read_config(model_dir)
    engine_backend(config, backend)
    arch = config.architecture
    on_disk = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    weights = max(parameter_count(arch) * 4, on_disk)  # float32 on the host
    return weights + kv_cache_bytes(arch, 4, KV_RESERVE_ROWS)


def _merged_tensors(model_dir: Path, base_dir: Path | None) -> dict[str, Any] | None:
    """HF-named weights with the adapter merged, or None for a directory of merged weights."""
    config = read_config(model_dir)
    if config.adapter is None:
        return None
    if base_dir is None:
        raise FailedPrecondition(f"{model_dir} holds a LoRA adapter only; its base is needed")
    tensors: dict[str, Any] = merge.load_merged(model_dir, base_dir)
    return tensors


def _dtype_name(precision: str, accelerator: bool) -> str:
    if precision not in PRECISIONS:
        raise InvalidArgument(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "auto":
        return "bfloat16" if accelerator else "float32"
    return precision


def load_engine(
    model_dir: Path,
    *,
    backend: str = "",
    precision: str = "auto",
    base_dir: Path | None = None,
) -> Engine:
    """An engine serving the model of `model_dir` (an adapter directory needs `base_dir`)."""
    config = read_config(model_dir)
    which = engine_backend(config, backend)
    tokenizer = TextTokenizer.load(model_dir, special_ids_from_config(config.raw))
    merged = _merged_tensors(model_dir, base_dir)
    if which == "jax":
        return _load_jax(model_dir, config, tokenizer, precision, base_dir, merged)
    return _load_torch(model_dir, config, tokenizer, precision, base_dir, merged)


def _load_jax(
    model_dir: Path,
    config: ModelDirConfig,
    tokenizer: TextTokenizer,
    precision: str,
    base_dir: Path | None,
    merged: dict[str, Any] | None,
) -> Engine:
    import jax
    import jax.numpy as jnp

    from tunix_rt.inference.engines.jax_engine import JaxEngine
    from tunix_rt.models.jax import model as model_lib
    from tunix_rt.models.jax import model_dir as model_dir_lib
    from tunix_rt.models.jax import weights

    arch = config.architecture
    if merged is not None:
        model = model_lib.abstract_model(arch)
        weights.load_hf(model, merged)
    else:
        # An adapter always arrives merged (`_merged_tensors`): the engine's decode step calls
        # the model's modules one by one, past qwix's LoRA interception.
        model, _, _ = model_dir_lib.load_model_dir(model_dir, base_dir)
    accelerator = jax.devices()[0].platform != "cpu"
    dtype = jnp.bfloat16 if _dtype_name(precision, accelerator) == "bfloat16" else jnp.float32
    count = parameter_count(arch)
    return JaxEngine(
        model,
        tokenizer,
        arch,
        dtype=dtype,
        capacity=KV_RESERVE_ROWS,
        parameter_count=count,
        weight_bytes=count * jnp.dtype(dtype).itemsize,
    )


def _load_torch(
    model_dir: Path,
    config: ModelDirConfig,
    tokenizer: TextTokenizer,
    precision: str,
    base_dir: Path | None,
    merged: dict[str, Any] | None,
) -> Engine:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunix_rt.inference.engines.torch_engine import TorchEngine

    accelerator = torch.cuda.is_available()
    name = _dtype_name(precision, accelerator)
    dtype = torch.bfloat16 if name == "bfloat16" else torch.float32
    if merged is None:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    else:
        hf_config = AutoConfig.from_pretrained(str(base_dir or model_dir))
        model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)  # type: ignore[no-untyped-call]
        state = {k: torch.from_numpy(v.copy()) for k, v in merged.items()}
        model.load_state_dict(state, strict=False)
        if hf_config.tie_word_embeddings:
            model.tie_weights()
    if accelerator:
        model = model.to("cuda")  # type: ignore[arg-type]
    count = parameter_count(config.architecture)
    engine = TorchEngine(
        model,
        tokenizer,
        config.architecture,
        capacity=KV_RESERVE_ROWS,
        parameter_count=count,
        weight_bytes=count * (2 if dtype == torch.bfloat16 else 4),
    )
    return engine
