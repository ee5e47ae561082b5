"""The Ray actors that run the ranks' worker processes (RankHost, one per rank of an attempt), and
the Ray driver's supply of them (HostPool, in ray_driver.py's process).

Why a pool: a new actor waits for Ray to start a Ray worker process for it (interpreter, `import
ray`, registration), and the driver's first call to it for a connection: ~0.6-0.8 s of every
attempt on the 2-core VM (`bench/ray_overhead.py --phases`; the workers the raylets prestart did
not serve these actors). So the driver keeps one spare RankHost started, and called once, ahead
on every node with CPUs (one idle Ray worker process per node), and a CPU rank takes its node's
spare; it is replaced once the attempt's workers have started. The actor class is defined once
per driver, so it is exported to the GCS once.

A spare reserves nothing (no CPUs, pinned to its node): the rank's devices are its attempt's
placement-group bundle, reserved before any rank starts (ray_ranks.py); the actor only starts and
watches the worker process. A GPU rank still gets a new actor in its bundle with its GPUs: the
CUDA_VISIBLE_DEVICES Ray gives that actor is what its worker sees. Either way an actor serves one
rank of one attempt and is killed with it (its worker dies with it: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunix_rt.training.worker_protocol import RANK_ENV

# Every RankHost's options: threaded, so a stop signal arrives while a read waits; never
# restarted (a restarted rank would rejoin nothing: the service requeues the job instead).
ACTOR_OPTIONS: dict[str, Any] = {"max_concurrency": 4, "max_restarts": 0}


class RankHost:
    """The Ray actor of one rank: starts the worker process on its node and buffers its stdout."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._ended = False

    def ready(self) -> bool:
        """Answers once the actor runs: a spare's liveness check."""
        return True

    def rendezvous(self) -> str:
        """A free host:port on this node for rank 0's process group."""
        import ray

        address: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        with socket.socket() as s:
            s.bind((address, 0))
            return f"{address}:{s.getsockname()[1]}"

    def start(self, spec_json: str, args: list[str], env: dict[str, str], workdir: str) -> int:
        """Writes the spec and starts the worker (see worker.py) in `workdir`; its pid."""
        directory = Path(workdir)
        directory.mkdir(parents=True, exist_ok=True)
        rank = env.get(RANK_ENV, "0")
        spec_path = directory / f"spec-rank{rank}.json"
        spec_path.write_text(spec_json)
        full_env = {**os.environ, **env, "TUNIX_RT_PARENT_PID": str(os.getpid())}
        argv = [sys.executable, "-m", "tunix_rt.training.worker", "--spec", str(spec_path)]
        with open(directory / f"worker-{env['TUNIX_RT_ATTEMPT']}-rank{rank}.log", "ab") as err:
            process = subprocess.Popen(
                [*argv, *args], stdout=subprocess.PIPE, stderr=err, env=full_env
            )
        self._process = process
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()
        return process.pid

    def _pump(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def read(self, wait: float, keep: bool = True) -> tuple[list[bytes], int | None]:
        """The lines written since the last read (an empty list without `keep`), and the exit
        code once the worker has ended and every line was read. Returns as soon as there is a
        line or the end, else after `wait` seconds."""
        lines: list[bytes] = []
        with contextlib.suppress(queue.Empty):
            item = self._lines.get(timeout=wait)
            while True:
                if item is None:
                    self._ended = True
                    break
                if keep:
                    lines.append(item)
                item = self._lines.get_nowait()
        if self._ended and self._process is not None:
            return lines, self._process.wait()
        return lines, None

    def signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)


async def get(ray: Any, ref: Any) -> Any:
    """An ObjectRef's value, awaited without blocking the event loop."""
    return await asyncio.wrap_future(ref.future())


class HostPool:
    """The driver's RankHost actors: the actor class, and a spare on each node (see the module
    docstring)."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.host_class = ray.remote(RankHost)  # defined, and exported to the GCS, once
        self.nodes: set[str] = set()  # the ids of the nodes that keep a spare
        # node id -> an idle RankHost on it, and its first call's reply: made at once, as it
        # connects the driver to the actor (~0.14 s a rank would otherwise wait).
        self.spares: dict[str, tuple[Any, Any]] = {}

    def keep(self, node_ids: Iterable[str]) -> None:
        """Keeps a spare on each of `node_ids` (the alive nodes with CPUs) from now on; drops
        the spares of nodes that left (they went with their node)."""
        self.nodes = set(node_ids)
        for node in set(self.spares) - self.nodes:
            self._drop(self.spares.pop(node)[0])
        self.refill()

    def refill(self) -> None:
        """Starts a spare on each kept node that has none (Ray starts its process meanwhile)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for node in sorted(self.nodes - set(self.spares)):
            spare = self.host_class.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                **ACTOR_OPTIONS,
            ).remote()
            self.spares[node] = (spare, spare.ready.remote())

    async def take(self, node_id: str, kind: str, bundle: dict[str, float], placement: Any) -> Any:
        """An actor for a rank on `node_id`: the node's spare for a CPU rank, once it answers
        (one that died idle is replaced by a new actor), else a new actor holding the rank's
        `bundle` of placement-group bundle `placement` (a PlacementGroupSchedulingStrategy)."""
        taken = self.spares.pop(node_id, None) if kind != "gpu" else None
        if taken is not None:
            spare, first = taken
            try:
                await get(self.ray, first)
                await get(self.ray, spare.ready.remote())  # still there
                return spare
            except Exception:  # a spare killed or lost while idle: the node may still be fine
                self._drop(spare)
        return self.host_class.options(
            num_cpus=bundle.get("CPU", 0),
            num_gpus=bundle.get("GPU", 0),
            scheduling_strategy=placement,
            **ACTOR_OPTIONS,
        ).remote()

    def _drop(self, actor: Any) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(actor)

    def close(self) -> None:
        """Kills the spares (the driver is ending; they would die with it all the same)."""
        self.nodes = set()
        for node in list(self.spares):
            self._drop(self.spares.pop(node)[0])
