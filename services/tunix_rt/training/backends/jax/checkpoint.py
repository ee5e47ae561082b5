"""Checkpoints: where they live, what they hold, and what a resume must match.

PeftTrainer's Orbax CheckpointManager writes `workdir/checkpoints/<step>/` with the model
parameters (only the LoRA parameters for an adapter job; the base is rebuilt from its source),
the optimizer state (AdamW moments, step count, accumulation buffers), and a JSON item
`custom_metadata` holding the step, the data position (micro-batches consumed), the seed and the
RNG key. PeftTrainer restores the latest one when it is constructed. Saves are synchronous, so a
reported checkpoint is complete and a cancelled job never leaves half of one.

`run.json` beside the checkpoints records what the data stream depends on (tokenizer, examples,
batching; resume.check_run); resuming with a different one would not continue the same loss
curve, so it is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"
KEEP = 3  # checkpoints kept on disk (the latest ones)


def options() -> ocp.CheckpointManagerOptions:
    """Orbax options: no automatic saves (the trainer saves at its own steps, with metadata),
    the latest KEEP kept, synchronous writes."""
    return ocp.CheckpointManagerOptions(
        save_decision_policy=ocp.checkpoint_managers.SpecificStepsPolicy(steps=()),
        max_to_keep=KEEP,
        enable_async_checkpointing=False,
    )


def rng_key_data(seed: int) -> list[int]:
    """The raw bits of the run's root RNG key (nothing in training draws from it today: tunix's
    models have no dropout; it is saved so a stochastic resume can continue the same stream)."""
    return [int(x) for x in np.asarray(jax.random.key_data(jax.random.key(seed))).ravel()]


def metadata(step: int, data_position: int, seed: int) -> dict[str, Any]:
    """The JSON saved with the checkpoint of `step`."""
    return {
        "step": step,
        "data_position": data_position,
        "seed": seed,
        "rng_key_data": rng_key_data(seed),
    }


def step_path(workdir: Path, step: int) -> Path:
    return workdir / CHECKPOINT_DIR / str(step)
