"""A JAX job spread over nodes: one process per rank, joined with `jax.distributed`.

The Ray executor starts one worker per node (torch's ranks the same way), each seeing only its
node's devices; `jax.distributed.initialize` at rank 0's rendezvous address makes them one JAX
program whose `jax.devices()` are every rank's (CPU collectives over gloo, GPUs over NCCL).

How the job is laid out, and why:
- **Data parallel with replicated parameters** (`mesh.make_data_mesh`): each rank holds the whole
  model, so rank 0 alone can write a checkpoint or the model directory from its own copy, and
  every rank can restore one from a local file. Sharding the parameters over ranks would make
  every checkpoint a collective write to one directory every node reaches.
- **Every rank runs the same program** (SPMD): the same batches in the same order, the same
  evaluations between steps, the same stop decisions. Every rank builds the whole global batch
  (the batcher is deterministic) and places only its rows (`global_batch`).
- **Stops are decided by rank 0** and shared each micro-batch (`SharedStop`): a cancelled job
  stops at the same step everywhere, as torch's ranks do with their all-reduced flag.
- **Checkpoints**: rank 0 saves alone (Orbax over rank 0's process only, `checkpoint.options`);
  every rank restores the latest one from its own directory, a copy from the checkpoint store or
  rank 0's when they share a disk (worker.py pulls it before training).
- **After the last step** every rank drops to its local replica (`localize`), so rank 0's final
  evaluation and model directory need nobody else.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tunix_rt.training.backends import preparation

# How long a rank leaving the job waits for the others at the barrier (they are at most a step's
# work apart: every rank trains the same steps).
PART_SECONDS = 120


@dataclass(frozen=True)
class Processes:
    """This process's place in the job."""

    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def part(self, model: nnx.Module) -> None:
        """Ends the ranks' joint work: each keeps its replica of `model` (`localize`) and leaves
        the job's coordinator (a barrier); what follows runs on rank 0 alone."""
        localize(model)
        jax.distributed.shutdown()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def joined(rank: int, world: int, rendezvous: str) -> Iterator[Processes]:
    """This worker as rank `rank` of `world`, rank 0 serving the coordinator at `rendezvous`.
    Must run before anything initialises a JAX backend. The ranks leave together with
    `Processes.part` once they need each other no more; a rank that fails skips that (it would
    wait for the others at a barrier): its process ends, and the executor ends the others."""
    # JAX's preemption service catches SIGTERM for itself (a sync point Orbax would save at):
    # SIGTERM is the service's stop request, which the worker's own handler must see (rank 0
    # then decides the stop for every rank, SharedStop).
    jax.config.update("jax_enable_preemption_service", False)  # type: ignore[no-untyped-call]
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # type: ignore[no-untyped-call]
    jax.distributed.initialize(
        coordinator_address=rendezvous,
        num_processes=world,
        process_id=rank,
        shutdown_timeout_seconds=PART_SECONDS,
    )
    yield Processes(rank, world)


def broadcast_bytes(processes: Processes, payload: bytes) -> bytes:
    """Rank 0's `payload` on every rank (a collective: every rank calls it)."""
    size = int(multihost_utils.broadcast_one_to_all(np.int64(len(payload))))
    buffer = np.zeros(size, np.uint8)
    if processes.is_main:
        buffer[:] = np.frombuffer(payload, np.uint8)
    return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buffer)))


def share_directory(processes: Processes, directory: Path) -> None:
    """Gives every rank rank 0's `directory` (small files: a tokenizer), so ranks on nodes that
    share no disk read the same files."""
    files = preparation.directory_files(directory) if processes.is_main else {}
    # Pickled as torch.distributed.broadcast_object_list does: the ranks are one job's.
    shared = pickle.loads(broadcast_bytes(processes, pickle.dumps(files)))
    if not processes.is_main:
        preparation.write_files(directory, shared)


def global_batch(batch: dict[str, np.ndarray], mesh: Mesh, axes: tuple[str, ...]) -> Any:
    """The global arrays of a batch every rank holds whole: each rank places only the rows of
    its own devices (tunix passes arrays already sharded this way through)."""

    def place(x: np.ndarray) -> jax.Array:
        spec = PartitionSpec(*axes) if x.ndim else PartitionSpec()  # type: ignore[no-untyped-call]
        return jax.make_array_from_callback(x.shape, NamedSharding(mesh, spec), lambda i: x[i])

    return {name: place(np.asarray(value)) for name, value in batch.items()}


def local_replica(x: Any) -> Any:
    """This rank's copy of a replicated global array (itself when the rank holds all of it)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x.addressable_data(0)
    return x


def localize(model: nnx.Module) -> None:
    """Replaces the model's global arrays with this rank's replicas: what follows runs on this
    rank alone (rank 0's final evaluation and model directory)."""
    state = nnx.state(model)
    nnx.update(model, jax.tree.map(local_replica, state))


class SharedStop:
    """Wraps a rank's reporter so that `should_stop` is rank 0's answer on every rank: a
    collective, called at the same points of the same program on every rank (SPMD), while the
    ranks are joined; after `Processes.part`, rank 0's own answer."""

    def __init__(self, reporter: Any) -> None:
        self._reporter = reporter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)

    def should_stop(self) -> bool:
        local = bool(self._reporter.should_stop())
        if not jax.distributed.is_initialized():
            return local
        return bool(multihost_utils.broadcast_one_to_all(np.bool_(local)))
