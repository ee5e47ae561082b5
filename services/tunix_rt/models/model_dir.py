"""Writing a model directory, the same for every backend: the weights (through the backend's own
saver), `config.json` (interchange.model_config's layout) and `tokenizer.json`.

Plain Python: the backend passes a function that saves its framework's tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Required, TypedDict

from tunix_rt.models.interchange.model_config import write_config
from tunix_rt.models.lora import LoraSpec
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer


class ModelDirOptions(TypedDict, total=False):
    """The keyword arguments of every backend's `write_model_dir`."""

    chat_template: Required[str]
    training_step: Required[int]
    lora: LoraSpec | None  # the job's LoRA (None: full fine-tuning)
    lora_mode: str  # "merged" (LoRA folded into the weights) or "adapter" (adapter only)
    base: str  # the base model an adapter applies to
    extra: dict[str, Any] | None  # more `tunix_rt` config entries


# (directory, the job's LoRA or None, adapter only?) -> writes the weights and returns what the
# adapter entry of the config adds to rank, alpha, target modules and base (e.g. its format).
SaveWeights = Callable[[Path, LoraSpec | None, bool], dict[str, Any]]


def write_model_dir(
    path: Path,
    arch: ArchitectureConfig,
    tokenizer: TextTokenizer,
    backend: str,
    save_weights: SaveWeights,
    *,
    chat_template: str,
    training_step: int,
    lora: LoraSpec | None = None,
    lora_mode: str = "merged",
    base: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes a model directory: the weights (`save_weights`), config.json, tokenizer.json."""
    path.mkdir(parents=True, exist_ok=True)
    adapter_lora = lora if lora_mode == "adapter" else None
    added = save_weights(path, lora, adapter_lora is not None)
    adapter = None
    if adapter_lora is not None:
        adapter = {
            "rank": adapter_lora.rank,
            "alpha": adapter_lora.alpha,
            "target_modules": list(adapter_lora.target_modules),
            "base": base,
            **added,
        }
    write_config(
        path,
        arch,
        tokenizer_ids={
            "bos": tokenizer.bos_id(),
            "eos": tokenizer.eos_id(),
            "pad": tokenizer.pad_id(),
        },
        tokenizer_description=tokenizer.describe(),
        backend=backend,
        chat_template=chat_template,
        training_step=training_step,
        adapter=adapter,
        extra=extra,
    )
    tokenizer.save(path)
    return path
