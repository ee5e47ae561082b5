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


def options(rank: int | None = None) -> ocp.CheckpointManagerOptions:
    """Orbax options: no automatic saves (the trainer saves at its own steps, with metadata),
    the latest KEEP kept, synchronous writes. `rank`: this process's rank in a job spread over
    processes (multiprocess.py), whose Orbax works over this process alone: rank 0 saves its
    replica of the (replicated) state by itself, every rank restores from its own directory."""
    solo = None
    if rank is not None:
        solo = ocp.options.MultiprocessingOptions(
            primary_host=rank, active_processes={rank}, barrier_sync_key_prefix=f"rank-{rank}"
        )
    return ocp.CheckpointManagerOptions(
        save_decision_policy=ocp.checkpoint_managers.SpecificStepsPolicy(steps=()),
        max_to_keep=KEEP,
        enable_async_checkpointing=False,
        # Orbax cannot create the root over a subset of processes: trainer.run creates it.
        **({"multiprocessing_options": solo, "create": False} if solo is not None else {}),
    )


def save_alone(rank: int) -> None:
    """Makes Orbax in this process (a rank of a job spread over processes) write and read a
    replicated array by itself: the whole array from this rank's replica (no replica-parallel
    split, which leaves parts to the other ranks), and no cross-process check of array
    metadata (which expects every process's). Process-wide: a worker runs one job."""
    handler = ocp.type_handlers.ArrayHandler(
        primary_host=rank, use_replica_parallel=False, array_metadata_store=None
    )
    ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)


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
