"""transformers models from neutral architecture configs: random init, loading, LoRA, precision.

The Hugging Face config always comes from `interchange.model_config.hf_config` (the one
definition shared with the JAX backend and the exporter), so a preset means the same model here
as there. Attention is `sdpa`: it honours the 4-D boolean block-diagonal mask of packed rows
(eager adds a boolean mask as numbers, which is wrong) and is ~1.5x faster than eager on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunix_rt.models.interchange.model_config import hf_config
from tunix_rt.models.lora import LoraSpec
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer

ATTENTION = "sdpa"


def transformers_config(arch: ArchitectureConfig, bos_id: int, eos_id: int, pad_id: int) -> Any:
    """The transformers config object (LlamaConfig / Qwen2Config / Qwen3Config) of `arch`."""
    from transformers import AutoConfig

    keys = hf_config(arch, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id)
    model_type = keys.pop("model_type")
    keys.pop("torch_dtype", None)  # parameters are made float32 explicitly
    config = AutoConfig.for_model(model_type, **keys)
    config._attn_implementation = ATTENTION
    return config


def config_for(arch: ArchitectureConfig, tokenizer: TextTokenizer) -> Any:
    return transformers_config(arch, tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id())


def create_model(config: Any, seed: int) -> Any:
    """A randomly initialised float32 causal LM (transformers' own init, seeded)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    auto: Any = AutoModelForCausalLM
    model = auto.from_config(config, attn_implementation=ATTENTION)
    return model.to(torch.float32)


def load_model(config: Any, path: Path) -> Any:
    """A causal LM of `config` with the weights of directory `path` (`model.safetensors` or the
    shards of a Hugging Face checkpoint)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    quiet: Any = logging.disable_progress_bar
    quiet()  # a bar per load would fill the job's log
    return AutoModelForCausalLM.from_pretrained(
        str(path), config=config, dtype=torch.float32, attn_implementation=ATTENTION
    )


def apply_lora(model: Any, lora: LoraSpec, seed: int) -> Any:
    """A peft LoRA model over `model` (base weights frozen; A random, seeded; B zero)."""
    from peft import LoraConfig, get_peft_model

    alpha: Any = lora.alpha  # peft annotates int; scaling is alpha / r, a float works
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    return get_peft_model(model, config)


def parameter_count(model: Any) -> int:
    """Distinct parameters (tied embeddings once), LoRA's included."""
    return sum(p.numel() for p in model.parameters())


def trainable_parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lora_parameter_count(model: Any) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the forward pass, or None for plain float32: bfloat16 for
    `auto` / `mixed_bfloat16` / `bfloat16` on a GPU that supports it (parameters and optimizer
    state stay float32; torch has no cheap pure-bfloat16 AdamW). On a CPU only an explicit
    `mixed_bfloat16` / `bfloat16` autocasts, as on the JAX backend: bfloat16 pays on CPUs with
    AVX-512 BF16 or AMX (1.4x on llama3-small, 2 Zen 4 cores) and is emulated, slowly, on
    others, and `auto` must not make a job slower or change its numbers by moving hosts."""
    if precision == "float32":
        return None
    if device.type == "cpu":
        return torch.bfloat16 if precision in ("mixed_bfloat16", "bfloat16") else None
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
