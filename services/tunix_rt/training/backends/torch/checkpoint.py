"""Checkpoints of the torch backend: where they live, what they hold, what a resume must match.

`workdir/checkpoints/<step>/` holds

    state.pt    the trainable weights (only the LoRA weights for a LoRA job: the base is rebuilt
                from its source) and the optimizer state (AdamW moments and step counts)
    meta.json   step, data position (micro-batches consumed), seed, and the torch, numpy and
                Python RNG states

A checkpoint is written to a temporary directory and renamed into place, so one that exists is
complete whenever the worker is killed; the latest KEEP are kept. `run.json` beside them records
what the data stream depends on, as on the JAX backend (resume.check_run): resuming with a
different one would not continue the same loss curve, so it is FAILED_PRECONDITION.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
KEEP = 3


def step_path(workdir: Path, step: int) -> Path:
    return workdir / CHECKPOINT_DIR / str(step)


def _steps(workdir: Path) -> list[int]:
    root = workdir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())


def latest_step(workdir: Path) -> int:
    """The step of the newest complete checkpoint; 0 without one."""
    steps = _steps(workdir)
    return steps[-1] if steps else 0


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The weights training changes (LoRA's only, when the base is frozen), on the CPU."""
    return {
        name: p.detach().to("cpu", copy=True)
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@dataclass(frozen=True)
class Restored:
    step: int
    data_position: int


def save(
    workdir: Path, step: int, data_position: int, seed: int, model: Any, optimizer: Any
) -> Path:
    """Writes the checkpoint of `step` atomically and prunes all but the latest KEEP."""
    final = step_path(workdir, step)
    temporary = final.parent / f".tmp-{step}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    state = {
        "model": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    torch.save(state, temporary / STATE_FILE)
    meta = {"step": step, "data_position": data_position, "seed": seed, "rng": _rng_state()}
    (temporary / META_FILE).write_text(json.dumps(meta) + "\n")
    if final.exists():  # the same step again after a resume: replace it whole
        shutil.rmtree(final)
    os.replace(temporary, final)
    for old in _steps(workdir)[:-KEEP]:
        shutil.rmtree(step_path(workdir, old), ignore_errors=True)
    return final


def restore(workdir: Path, step: int, model: Any, optimizer: Any) -> Restored:
    """Loads the checkpoint of `step` into `model` and `optimizer` and restores the RNGs."""
    path = step_path(workdir, step)
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    meta = json.loads((path / META_FILE).read_text())
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["model"].items():
            parameters[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    _set_rng_state(meta["rng"])
    return Restored(int(meta["step"]), int(meta["data_position"]))
