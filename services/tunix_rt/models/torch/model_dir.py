"""Model directories of the torch backend, in the layout every backend shares
(tunix_rt.models.interchange.model_config):

    config.json        HF keys plus the `tunix_rt` section (backend "torch")
    tokenizer.json     the HF `tokenizers` file
    model.safetensors  the transformers state dict: HF names, float32, contiguous; no
                       `lm_head.weight` when embeddings are tied (as transformers saves it)

An `adapter` registration instead holds the standard PEFT files (`adapter_config.json`,
`adapter_model.safetensors`) and no base weights, and `tunix_rt.adapter` says
`"format": "peft"`; loading it needs the base directory. A plain Hugging Face Llama / Qwen2 /
Qwen3 checkpoint directory loads too.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Unpack

import torch

from tunix_rt.models import model_dir as model_dir_lib
from tunix_rt.models.interchange.model_config import WEIGHTS_FILE, ModelDirConfig, read_config
from tunix_rt.models.lora import LoraSpec
from tunix_rt.models.model_dir import ModelDirOptions
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer, special_ids_from_config
from tunix_rt.models.torch import model as model_lib

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"


def hf_state(model: Any) -> dict[str, torch.Tensor]:
    """A transformers model's weights as saved: float32, contiguous, on the CPU; the tied
    `lm_head.weight` (the embedding itself) left out."""
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    return {
        name: value.detach().to("cpu", torch.float32).contiguous()
        for name, value in model.state_dict().items()
        if not (tied and name == "lm_head.weight")
    }


def _save_weights(model: Any, path: Path, lora: LoraSpec | None, adapter: bool) -> dict[str, Any]:
    from safetensors.torch import save_file

    if adapter:
        from peft import get_peft_model_state_dict

        weights = {
            name: value.detach().to("cpu", torch.float32).contiguous()
            for name, value in get_peft_model_state_dict(model).items()
        }
        save_file(weights, str(path / PEFT_WEIGHTS), metadata={"format": "pt"})
        model.peft_config["default"].save_pretrained(str(path))
        return {"format": "peft"}
    if lora is not None:
        model = model.merge_and_unload()
    save_file(hf_state(model), str(path / WEIGHTS_FILE), metadata={"format": "pt"})
    return {}


def write_model_dir(
    path: Path,
    model: Any,
    arch: ArchitectureConfig,
    tokenizer: TextTokenizer,
    **options: Unpack[ModelDirOptions],
) -> Path:
    """Writes the model directory (see the module docstring); returns `path`. A merged LoRA
    model is merged in place (training is over by then)."""
    save = functools.partial(_save_weights, model)
    return model_dir_lib.write_model_dir(path, arch, tokenizer, "torch", save, **options)


def load_model_dir(
    path: Path, base_dir: Path | None = None
) -> tuple[Any, TextTokenizer, ModelDirConfig]:
    """(model, tokenizer, config) of a model directory, float32 on the CPU, in eval mode; a PEFT
    adapter directory needs `base_dir` (ValueError otherwise, and for a JAX-format adapter)."""
    config = read_config(path)
    tokenizer = TextTokenizer.load(path, special_ids_from_config(config.raw))
    hf = model_lib.config_for(config.architecture, tokenizer)
    if config.adapter is None:
        return model_lib.load_model(hf, path).eval(), tokenizer, config
    if base_dir is None:
        raise ValueError(f"{path} holds a LoRA adapter only; give the base model directory")
    if config.adapter.get("format") != "peft":
        raise ValueError(f"{path} holds a JAX-format adapter; the torch backend reads PEFT ones")
    from peft import PeftModel

    base = model_lib.load_model(hf, base_dir)
    return PeftModel.from_pretrained(base, str(path)).eval(), tokenizer, config
