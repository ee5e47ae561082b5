"""Low-rank adaptation (LoRA) as a job asks for it: which modules, what rank and scale.

Both model definitions (JAX through qwix, torch through peft) and the training job spec read it,
so it lives below them. Plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass

# The projection modules of a Llama/Qwen decoder layer, by their Hugging Face names.
LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSpec:
    """Low-rank adaptation of the named modules."""

    # Rank r of the A [in, r] and B [r, out] factors.
    rank: int = 8
    # Scale numerator: the update is (alpha / rank) · B·A (Hu et al. 2021, section 4.1).
    alpha: float = 16.0
    # Dropout on the adapter's input during training; must be 0 on JAX (qwix applies it when
    # generating too).
    dropout: float = 0.0
    # Which modules get an adapter (a subset of LORA_MODULES).
    target_modules: tuple[str, ...] = LORA_MODULES
