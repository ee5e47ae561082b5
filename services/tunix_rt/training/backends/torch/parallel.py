"""Data parallelism over a worker's GPUs with torch.distributed (DDP over NCCL).

The worker sees only its job's GPUs (CUDA_VISIBLE_DEVICES). With more than one, the worker
process itself is rank 0 (it keeps the reporter, the SIGTERM handler and the pipe to the service)
and spawns ranks 1..n-1; every rank builds the same data stream and takes rows `rank::world` of
each micro-batch. Collectives per step: DDP's gradient all-reduce, one for the loss and one for
the stop flag (rank 0's `should_stop`, so all ranks stop at the same step). Only rank 0 writes
checkpoints, evaluates and writes the model directory. On CPU a job is one process (`single`).

The CPU test suite runs this path with two gloo ranks on the CPU (same code but for the
process-group backend); NCCL on real GPUs is untested here.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from tunix_rt.training.backends import preparation


@dataclass(frozen=True)
class Parallel:
    """This process's place in the job: rank, world size, device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return [float(v) for v in tensor.tolist()]

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any (rank 0 decides stops)."""
        return self.all_sum([float(flag)])[0] > 0 if self.world > 1 else flag

    def wrap(self, model: Any) -> Any:
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, model: Any, last: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP's no_sync for all but the last micro-batch of an accumulated step."""
        if self.world == 1 or last:
            return contextlib.nullcontext()
        return model.no_sync()  # type: ignore[no-any-return]


def share_directory(parallel: Parallel, directory: Path) -> None:
    """Gives every rank rank 0's `directory` (small files: a tokenizer), sent over the process
    group, so ranks on nodes that share no disk read the same files; also a barrier."""
    files: list[Any] = [preparation.directory_files(directory) if parallel.is_main else None]
    if parallel.world > 1:
        dist.broadcast_object_list(files, src=0)
    if not parallel.is_main:
        preparation.write_files(directory, files[0])


def single() -> Parallel:
    device = torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    return Parallel(0, 1, device)


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _group(
    rank: int, world: int, port: int, host: str = "127.0.0.1", local: int | None = None
) -> Iterator[Parallel]:
    """Joins the process group at rank 0's `host:port`; `local` is this rank's GPU index on its
    node (the rank itself when every rank is on one host)."""
    local = rank if local is None else local
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        backend, device = "nccl", torch.device("cuda", local)
    else:  # gloo on CPU: the tests' ranks and the Ray executor's multi-node CPU jobs
        backend, device = "gloo", torch.device("cpu")
    dist.init_process_group(
        backend, init_method=f"tcp://{host}:{port}", rank=rank, world_size=world
    )
    try:
        yield Parallel(rank, world, device)
    finally:
        dist.destroy_process_group()


def _rank_main(rank: int, world: int, port: int, target: Callable[[Parallel, Any], Any]) -> None:
    """Entry point of ranks 1..n-1 (spawned): dies with the worker, runs `target`."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with _group(rank, world, port) as parallel:
        target(parallel, None)


def run_data_parallel(world: int, target: Callable[[Parallel, Any], Any], reporter: Any) -> Any:
    """Runs `target(parallel, reporter)` on `world` GPUs, with `reporter` on rank 0 and None on
    the others; returns rank 0's result. `target` must be picklable (a module-level function or
    functools.partial of one)."""
    context = torch.multiprocessing.get_context("spawn")
    port = _free_port()
    children = [
        context.Process(target=_rank_main, args=(rank, world, port, target), daemon=True)
        for rank in range(1, world)
    ]
    for child in children:
        child.start()
    try:
        with _group(0, world, port) as parallel:
            return target(parallel, reporter)
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()


@contextlib.contextmanager
def joined(rank: int, world: int, rendezvous: str) -> Iterator[Parallel]:
    """This worker as rank `rank` of a multi-node job: one process per node (per GPU on GPU
    nodes, which see only that GPU), so its device is the node's first."""
    host, _, port = rendezvous.rpartition(":")
    with _group(rank, world, int(port), host, local=0) as parallel:
        yield parallel
