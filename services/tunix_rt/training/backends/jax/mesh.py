"""Spreading a job over its devices: a 1-D data-parallel mesh with FSDP-sharded parameters.

On jax 0.10 a mesh from `jax.make_mesh` has Explicit axes and tunix training fails ("can only
refer to Auto axes"); under `jax.set_mesh` tunix silently skips sharding. So the mesh is built
with `AxisType.Auto` axes and entered with `with mesh:` (DESIGN.md decision 2). Axes are tunix's
names: `fsdp` (the batch and the parameters' sharded dimension) over every device, `tp` of size 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh

DATA_AXES = ("fsdp",)  # PeftTrainer's data_sharding_axis: the batch dimension is split over it
# A job spread over processes (multiprocess.py): the batch is split over `data`, the parameters
# (annotated with `fsdp` and `tp`, both of size 1 here) are replicated on every device.
REPLICATED_DATA_AXES = ("data",)


def make_mesh(devices: Sequence[Any]) -> Mesh | None:
    """A (`fsdp`=n, `tp`=1) mesh over `devices`; None for a single device."""
    if len(devices) <= 1:
        return None
    grid = np.asarray(devices, dtype=object).reshape(len(devices), 1)
    return Mesh(grid, ("fsdp", "tp"), axis_types=(AxisType.Auto, AxisType.Auto))


def make_data_mesh(devices: Sequence[Any]) -> Mesh:
    """A (`data`=n, `fsdp`=1, `tp`=1) mesh over `devices`: data parallel, replicated parameters."""
    grid = np.asarray(devices, dtype=object).reshape(len(devices), 1, 1)
    axes = (AxisType.Auto,) * 3
    return Mesh(grid, (*REPLICATED_DATA_AXES, "fsdp", "tp"), axis_types=axes)


@contextlib.contextmanager
def entered(mesh: Mesh | None) -> Iterator[None]:
    """`with mesh:` when there is one (tunix reads the mesh from this context)."""
    if mesh is None:
        yield
        return
    with mesh:
        yield


def shard_model(model: nnx.Module, mesh: Mesh | None) -> None:
    """Places the model's state by the sharding annotations tunix puts on its parameters."""
    if mesh is None:
        return
    state = nnx.state(model)
    shardings = nnx.get_named_sharding(state, mesh)
    nnx.update(model, jax.device_put(state, shardings))
