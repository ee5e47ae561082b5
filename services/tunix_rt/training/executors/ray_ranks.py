"""A job's attempt on a Ray cluster: its gang reserved with a placement group and one rank actor per
rank (ray_hosts.RankHost, a spare started ahead on its node for a CPU rank), each running the
ordinary worker process (`python -m tunix_rt.training.worker`) on its node. All of it runs in the
Ray driver process (ray_driver.py), which relays it to the service.

Ranks: a job whose devices are on one node is one rank with all of them (as on a local host); a
job spread over nodes is one rank per node on CPUs, one per GPU on GPUs (each sees only its GPU),
joined at rank 0's node by torch.distributed (gloo on CPU, NCCL on GPUs; torch/parallel.joined)
or jax.distributed (gloo on CPU; jax/multiprocess.joined), the rendezvous address their rank 0
serves. Each
rank is a placement-group bundle pinned to the node the scheduler chose (the `ray.io/node-id`
label): STRICT_PACK for one rank, STRICT_SPREAD for one rank per node, PACK for GPU ranks.

Rank 0's protocol events are the attempt's events (metrics stream from rank 0 exactly as a local
worker's); the others' are dropped in their actors. Each rank's output is read on its own, a read
returning as soon as a line or the worker's end is there, so no event and no attempt's end waits
on a poll. When a rank fails or its node dies the others are killed at once (they would wait in a
collective for gloo's 30-minute timeout); a lost node ends the attempt EXIT_NODE_LOST. Closing the
attempt kills every rank actor (each worker dies with its actor: PR_SET_PDEATHSIG) and removes the
placement group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunix_rt.training import worker_protocol as wp
from tunix_rt.training.devices import worker_environment
from tunix_rt.training.executors.base import EXIT_NODE_LOST
from tunix_rt.training.executors.ray_hosts import HostPool, get
from tunix_rt.training.spec import TrainSpec
from tunix_rt.training.worker_protocol import RANK_ENV, RENDEZVOUS_ENV, WORLD_ENV
from tunix_rt.v1 import run_pb2

# How long the gang may take to be reserved: the scheduler allocated free devices, so Ray only
# has to confirm; longer means the cluster changed under this service.
READY_SECONDS = 60.0
# The longest one read of a rank's output waits (it returns at once with a line or the end): it
# bounds only a call, never an event's delay; a read of an actor that died fails once Ray knows.
READ_WAIT = 10.0


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


async def start(
    pool: HostPool,
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
    """Reserves the ranks' gang, takes a RankHost per rank from `pool`, starts the workers in them;
    `on_lost(node)` is told of a rank's node that left the cluster. With `own_directories`
    (a checkpoint store holds what must outlive a node) rank r > 0 works in `workdir/rank-r`,
    as on nodes that share no disk: it reads checkpoints from the store and its tokenizer from
    rank 0 (torch_backend.train_rank), never from rank 0's directory."""
    from google.protobuf import json_format
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

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
        await asyncio.wait_for(get(pool.ray, group.ready()), READY_SECONDS)
        takes = [
            pool.take(
                rank.node_id,
                rank.kind,
                rank.bundle(),
                PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index),
            )
            for index, rank in enumerate(ranks)
        ]
        actors = list(await asyncio.gather(*takes))
    except BaseException:
        remove_placement_group(group)
        raise
    result = RayAttempt(pool.ray, group, actors, [r.host for r in ranks], on_lost)
    try:
        rendezvous = await get(pool.ray, actors[0].rendezvous.remote()) if len(ranks) > 1 else ""
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
        result.pids = list(await asyncio.gather(*(get(pool.ray, s) for s in starts)))
    except BaseException:
        await result.close()
        raise
    pool.refill()  # the spares taken, replaced now that the workers have started
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
        self._codes: dict[int, int] = {}  # each ended rank's exit code
        self._killed: set[int] = set()
        self._closed = False
        self._ended = asyncio.Event()

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        readers = [loop.create_task(self._follow(r, events)) for r in range(len(self.actors))]
        failed: dict[str, Any] | None = None  # rank 0's failure, held until every rank ended
        try:
            ended = 0
            while ended < len(readers):
                if (event := await events.get()) is None:
                    ended += 1
                elif event.get("event") == "failed":
                    failed = event
                else:
                    yield event
        finally:
            for reader in readers:
                reader.cancel()
        self.returncode = self._combine(self._codes)
        if failed is not None:
            if self._signalled():  # rank 0's error was the collective breaking: say so, no more
                message = f"rank 0 then failed: {failed.get('message', '')}"
                yield {"event": "log", "level": "WARNING", "message": message}
            else:
                yield failed
        self._ended.set()

    def _signalled(self) -> list[int]:
        """The ranks after 0 that a signal ended by itself (not killed here): SIGKILLed, the OOM
        killer, a segfault. Rank 0 then fails too, in its next collective, and reports that
        error; the job's cause is the other rank's end, so it names that."""
        return [
            r for r, code in sorted(self._codes.items()) if r and code < 0 and r not in self._killed
        ]

    async def _follow(self, rank: int, events: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Reads one rank's output to its end: rank 0's events into `events`, then None; a rank
        that failed, or whose actor died, gets the ranks still running killed."""
        code: int | None = None
        try:
            while code is None:
                try:
                    read = self.actors[rank].read.remote(READ_WAIT, rank == 0)
                    lines, code = await get(self.ray, read)
                except Exception:  # the actor died: killed here, or with its node
                    code = self._died(rank)
                    break
                for line in lines:
                    if (event := wp.decode(line)) is not None:
                        events.put_nowait(event)
            self._codes[rank] = code
            if code != 0:
                self._kill([r for r in range(len(self.actors)) if r not in self._codes])
        finally:
            events.put_nowait(None)

    def _died(self, rank: int) -> int:
        """The code of a rank whose actor died: killed here, else its node left the cluster."""
        if rank in self._killed:
            return -signal.SIGKILL
        if self.hosts[rank] not in self.lost_nodes:
            self.lost_nodes.append(self.hosts[rank])
            self.on_lost(self.hosts[rank])
        return EXIT_NODE_LOST

    def _combine(self, codes: dict[int, int]) -> int:
        """The attempt's code: a lost node's, else that of a rank after 0 a signal ended
        (`_signalled`), else the first rank's (rank 0 first) that failed by itself rather than
        being killed here after another failed."""
        if self.lost_nodes:
            return EXIT_NODE_LOST
        if signalled := self._signalled():
            return codes[signalled[0]]
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
