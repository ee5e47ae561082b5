"""A job's attempt on a Ray cluster: its gang reserved with a placement group and one rank actor per
rank, each running the ordinary worker process (`python -m tunix_rt.training.worker`) on its node.
All of it runs in the Ray driver process (ray_driver.py), which relays it to the service.

Ranks: a job whose devices are on one node is one rank with all of them (as on a local host); a
job spread over nodes is one rank per node on CPUs, one per GPU on GPUs (each sees only its GPU),
joined by torch.distributed (gloo on CPU, NCCL on GPUs) at rank 0's node (parallel.joined). Each
rank is a placement-group bundle pinned to the node the scheduler chose (the `ray.io/node-id`
label): STRICT_PACK for one rank, STRICT_SPREAD for one rank per node, PACK for GPU ranks.

Rank 0's protocol events are the attempt's events (metrics stream from rank 0 exactly as a local
worker's); the others' are read and dropped. When a rank fails or its node dies the others are
killed at once (they would wait in a collective for gloo's 30-minute timeout); a lost node ends
the attempt EXIT_NODE_LOST. Closing the attempt kills every rank actor (each worker dies with its
actor: PR_SET_PDEATHSIG) and removes the placement group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunix_rt.common.errors import FailedPrecondition
from tunix_rt.training import worker_protocol as wp
from tunix_rt.training.devices import worker_environment
from tunix_rt.training.executors.base import EXIT_NODE_LOST
from tunix_rt.training.spec import TrainSpec
from tunix_rt.training.worker_protocol import RANK_ENV, RENDEZVOUS_ENV, WORLD_ENV
from tunix_rt.v1 import run_pb2

# How long the gang may take to be reserved: the scheduler allocated free devices, so Ray only
# has to confirm; longer means the cluster changed under this service.
READY_SECONDS = 60.0
READ_WAIT = 0.5  # seconds one read of a rank's output waits for a line


@dataclass(frozen=True)
class Rank:
    """One rank: its node (`{address}/{node id}`) and the device ids it uses there."""

    host: str
    ids: tuple[str, ...]
    kind: str

    @property
    def node_id(self) -> str:
        return self.host.rpartition("/")[2]

    def bundle(self) -> dict[str, float]:
        return {"GPU" if self.kind == "gpu" else "CPU": float(len(self.ids))}


def plan(assignment: run_pb2.DeviceAssignment, hosts: Mapping[str, str]) -> list[Rank]:
    """The ranks of an attempt on the devices of `assignment` (`hosts`: device id → node)."""
    by_node: dict[str, list[str]] = {}
    for device in assignment.ids:
        by_node.setdefault(hosts[device], []).append(device)
    if len(by_node) == 1 or assignment.kind != "gpu":
        return [Rank(host, tuple(ids), assignment.kind) for host, ids in by_node.items()]
    return [Rank(host, (d,), "gpu") for host, ids in by_node.items() for d in ids]


class RankHost:
    """The Ray actor of one rank: starts the worker process on its node and buffers its stdout.
    Threaded (max_concurrency), so a stop signal arrives while a read waits."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._ended = False

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

    def read(self, wait: float) -> tuple[list[bytes], int | None]:
        """The lines written since the last read (waiting up to `wait` for one), and the exit
        code once the worker has ended and every line was read."""
        lines: list[bytes] = []
        with contextlib.suppress(queue.Empty):
            item = self._lines.get(timeout=wait)
            while True:
                if item is None:
                    self._ended = True
                    break
                lines.append(item)
                item = self._lines.get_nowait()
        if self._ended and self._process is not None:
            return lines, self._process.wait()
        return lines, None

    def signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)


def _environment(rank: Rank, index: int, world: int, rendezvous: str) -> dict[str, str]:
    """What the rank's worker sees: only its devices (a GPU rank keeps the CUDA_VISIBLE_DEVICES
    Ray gave its actor), one thread per CPU, and its place in the job."""
    env = worker_environment(rank.kind, list(rank.ids), 1)
    if rank.kind == "gpu":
        env.pop("CUDA_VISIBLE_DEVICES", None)
    if world > 1:
        env.update({RANK_ENV: str(index), WORLD_ENV: str(world), RENDEZVOUS_ENV: rendezvous})
        if rendezvous.startswith("127."):  # gloo binds where the hostname resolves otherwise
            env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


async def _get(ray: Any, ref: Any) -> Any:
    return await asyncio.wrap_future(ref.future())


async def start(
    ray: Any,
    ranks: list[Rank],
    spec: TrainSpec,
    workdir: Path,
    attempt: int,
    registry_address: str,
    assignment: run_pb2.DeviceAssignment,
    environment: Mapping[str, str],
    on_lost: Callable[[str], None],
    own_directories: bool = False,
) -> RayAttempt:
    """Reserves the ranks' gang, starts a RankHost per rank and the workers in them;
    `on_lost(node)` is told of a rank's node that left the cluster. With `own_directories`
    (a checkpoint store holds what must outlive a node) rank r > 0 works in `workdir/rank-r`,
    as on nodes that share no disk: it reads checkpoints from the store and its tokenizer from
    rank 0 (torch_backend.train_rank), never from rank 0's directory."""
    from google.protobuf import json_format
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if len(ranks) > 1 and spec.backend != "torch":
        raise FailedPrecondition(
            f"the {spec.backend} backend does not run across nodes yet (docs/scale-out.md)",
            reason="MULTI_NODE_UNSUPPORTED",
        )
    nodes = {r.node_id for r in ranks}
    strategy = "STRICT_PACK" if len(ranks) == 1 else "PACK"
    if len(nodes) == len(ranks) > 1:
        strategy = "STRICT_SPREAD"
    group = placement_group(
        [r.bundle() for r in ranks],
        strategy=strategy,
        name=f"tunix-rt/{spec.job_id}/{attempt}",
        bundle_label_selector=[{"ray.io/node-id": r.node_id} for r in ranks],
    )
    try:
        await asyncio.wait_for(_get(ray, group.ready()), READY_SECONDS)
    except BaseException:
        remove_placement_group(group)
        raise
    host_class = ray.remote(RankHost)
    actors = [
        host_class.options(
            num_cpus=rank.bundle().get("CPU", 0),
            num_gpus=rank.bundle().get("GPU", 0),
            max_concurrency=4,
            max_restarts=0,  # a restarted rank would rejoin nothing: the service requeues
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=index
            ),
        ).remote()
        for index, rank in enumerate(ranks)
    ]
    result = RayAttempt(ray, group, actors, [r.host for r in ranks], on_lost)
    try:
        rendezvous = await _get(ray, actors[0].rendezvous.remote()) if len(ranks) > 1 else ""
        directories = [
            workdir / f"rank-{i}" if own_directories and i else workdir for i in range(len(ranks))
        ]
        args = ["--registry", registry_address, "--run", f"runs/{spec.job_id}"]
        devices = json_format.MessageToDict(assignment)
        common = {**environment, "TUNIX_RT_DEVICES": json.dumps(devices)}
        common["TUNIX_RT_ATTEMPT"] = str(attempt)
        starts = [
            actors[i].start.remote(
                spec.dumps(),
                ["--workdir", str(directories[i]), *args],
                {**common, **_environment(rank, i, len(ranks), rendezvous)},
                str(directories[i]),
            )
            for i, rank in enumerate(ranks)
        ]
        result.pids = list(await asyncio.gather(*(_get(ray, s) for s in starts)))
    except BaseException:
        await result.close()
        raise
    return result


class RayAttempt:
    """The ranks of one attempt, in the driver process (ray_link.LinkedAttempt is the service's
    side); see the module docstring."""

    def __init__(
        self,
        ray: Any,
        group: Any,
        actors: list[Any],
        hosts: list[str],
        on_lost: Callable[[str], None],
    ) -> None:
        self.ray, self.group, self.actors = ray, group, actors
        self.hosts, self.on_lost = hosts, on_lost  # each rank's node; told of a lost one
        self.pids: list[int] = []
        self.returncode: int | None = None
        self.lost_nodes: list[str] = []
        self._killed: set[int] = set()
        self._closed = False
        self._ended = asyncio.Event()

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        codes: dict[int, int] = {}
        while len(codes) < len(self.actors):
            live = [r for r in range(len(self.actors)) if r not in codes]
            reads = [_get(self.ray, self.actors[r].read.remote(READ_WAIT)) for r in live]
            for rank, outcome in zip(
                live, await asyncio.gather(*reads, return_exceptions=True), strict=True
            ):
                if isinstance(outcome, BaseException):  # the actor died: killed, or its node
                    codes[rank] = -signal.SIGKILL if rank in self._killed else EXIT_NODE_LOST
                    if rank not in self._killed and self.hosts[rank] not in self.lost_nodes:
                        self.lost_nodes.append(self.hosts[rank])
                        self.on_lost(self.hosts[rank])
                    continue
                lines, code = outcome
                for line in lines if rank == 0 else []:
                    if (event := wp.decode(line)) is not None:
                        yield event
                if code is not None:
                    codes[rank] = code
            if any(code != 0 for code in codes.values()):
                self._kill([r for r in range(len(self.actors)) if r not in codes])
        self.returncode = self._combine(codes)
        self._ended.set()

    def _combine(self, codes: dict[int, int]) -> int:
        """The attempt's code: a lost node's, else the first rank's (rank 0 first) that failed
        by itself rather than being killed here after another failed."""
        if self.lost_nodes:
            return EXIT_NODE_LOST
        own = [codes[r] for r in sorted(codes) if codes[r] != 0 and r not in self._killed]
        return own[0] if own else next((c for _, c in sorted(codes.items()) if c != 0), 0)

    async def wait(self) -> int:
        await self._ended.wait()
        assert self.returncode is not None
        return self.returncode

    def ask_to_stop(self) -> None:
        for actor in self.actors:
            actor.signal.remote(signal.SIGTERM)

    def stop(self, grace_seconds: float) -> None:
        self.ask_to_stop()
        everyone = list(range(len(self.actors)))
        asyncio.get_running_loop().call_later(grace_seconds, self._kill, everyone)

    def _kill(self, ranks: list[int]) -> None:
        for rank in ranks:
            if rank not in self._killed and not self._closed:
                self._killed.add(rank)
                with contextlib.suppress(Exception):
                    self.ray.kill(self.actors[rank])

    async def close(self) -> None:
        """Kills every rank (a worker dies with its actor) and releases the placement group."""
        from ray.util.placement_group import remove_placement_group

        self._kill(list(range(len(self.actors))))
        self._closed = True
        with contextlib.suppress(Exception):
            remove_placement_group(self.group)
