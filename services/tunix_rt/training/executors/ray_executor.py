"""The Ray executor: a Ray cluster's nodes as the training service's inventory, and attempts run as
ranks on them (ray_ranks.py) by a Ray driver process (ray_driver.py, reached through ray_link.py).

`tunix-rt serve training --ray ADDRESS` runs jobs on a running cluster (`ray start --head` on one
machine, `ray start --address HEAD` on the others); `--ray auto` starts a one-node Ray head in
the driver process for trying it. The inventory is the cluster's alive nodes (ray_cluster.py),
taken when the driver connects and refreshed every INVENTORY_INTERVAL seconds (the job manager's
InventoryWatch calls `refresh`): a node that joins adds its devices under ids never used before
(a node that comes back after a restart is a new Ray node), a node that left takes its devices
out, so a queued job that fits only with the new node starts, and a job wider than the cluster
is refused against what the cluster has now.

The cluster going away (its GCS or the driver's raylet gone, or a refresh unanswered for
REFRESH_SECONDS) ends the driver: the inventory empties, jobs that ran on the cluster are
requeued (CLUSTER_LOST), new submissions get UNAVAILABLE, listeners (the server's health) hear
`False`; a new driver is started with backoff (1 s doubling to MAX_BACKOFF_SECONDS) until the
cluster answers, and then the inventory is the cluster's again and the requeued jobs resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from tunix_rt.training.executors import ray_ranks
from tunix_rt.training.executors.base import EXIT_NODE_LOST, Attempt, with_store
from tunix_rt.training.executors.ray_cluster import Node, describe, devices_of
from tunix_rt.training.executors.ray_link import DriverLink, LinkedAttempt
from tunix_rt.training.scheduler import Device
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import run_pb2

log = logging.getLogger(__name__)

# Seconds between inventory refreshes (one GCS call each), `TUNIX_RT_RAY_INVENTORY_SECONDS`.
INVENTORY_INTERVAL = float(os.environ.get("TUNIX_RT_RAY_INVENTORY_SECONDS") or 5.0)
# A refresh unanswered this long means the cluster's GCS is gone (Ray's driver would otherwise
# wait out gcs_rpc_server_reconnect_timeout_s, 60 s by default, before ending itself); listing
# the nodes takes milliseconds on a live GCS.
REFRESH_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 30.0
# How long the service's start waits for the first connection before serving NOT_SERVING.
FIRST_CONNECT_SECONDS = 60.0


class RayExecutor:
    """Runs attempts on a Ray cluster; see the module docstring."""

    def __init__(self, address: str, checkpoint_uri: str = "") -> None:
        self.address = address
        # With a checkpoint store each attempt has its own job directory, scratch space on its
        # node(s); without one the job directory must be on storage every node shares.
        self.checkpoint_uri = checkpoint_uri
        self.inventory_interval = INVENTORY_INTERVAL
        self.refresh_seconds = REFRESH_SECONDS
        self.nodes: list[Node] = []
        self.link: DriverLink | None = None
        self.down_reason = "not connected yet"
        self._next_index = {"gpu": 0, "cpu": 0}
        self._devices: list[Device] = []
        self._listeners: list[Callable[[bool], None]] = []
        self._keeper: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._keys = itertools.count(1)

    @property
    def place(self) -> str:
        """The cluster as it is now (nodes join and leave), for the never-fits refusal."""
        if self.link is None:
            return f"the Ray cluster at {self.address} (unreachable)"
        return describe(self.nodes)

    def devices(self) -> list[Device]:
        return self._devices

    def unavailable(self) -> str:
        if self.link is not None:
            return ""
        return (
            f"the Ray cluster at {self.address} is unreachable ({self.down_reason}); "
            "the training service reconnects by itself, retry later"
        )

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    async def open(self) -> None:
        """Starts connecting (and reconnecting, for as long as the service runs); waits up to
        FIRST_CONNECT_SECONDS for the first connection."""
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep_connected())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), FIRST_CONNECT_SECONDS)

    async def _keep_connected(self) -> None:
        delay = 1.0
        while True:
            try:
                link, nodes = await DriverLink.open(self.address, self.forget)
            except Exception as exc:
                self.down_reason = f"{type(exc).__name__}: {exc}"
                log.warning("cannot reach the Ray cluster at %s: %s", self.address, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, MAX_BACKOFF_SECONDS)
                continue
            delay = 1.0
            self._join(link, nodes)
            await link.ended.wait()
            self._leave(link)

    def _join(self, link: DriverLink, nodes: list[Node]) -> None:
        self.link = link
        self._update(nodes)
        self._connected.set()
        log.info("connected to %s", describe(self.nodes))
        self._tell(True)

    def _leave(self, link: DriverLink) -> None:
        """The cluster went away: its nodes leave the inventory until it is back."""
        self.link = None
        self.down_reason = f"its driver ended with exit code {link.process.returncode}"
        self._connected.clear()
        for node in list(self.nodes):
            self.forget(node.host)
        self._tell(False)

    def _tell(self, serving: bool) -> None:
        for listener in self._listeners:
            try:
                listener(serving)
            except Exception:
                log.exception("a listener of the Ray connection failed")

    def _update(self, alive: list[Node]) -> bool:
        """Adds the devices of nodes that joined and forgets nodes that left (in place, on the
        event loop: the list is the scheduler's); whether anything changed."""
        known = {n.host for n in self.nodes}
        joined = [n for n in alive if n.host not in known]
        left = known - {n.host for n in alive}
        for host in left:
            self.forget(host)
        self.nodes.extend(joined)
        self._devices.extend(devices_of(joined, self._next_index))
        return bool(joined or left)

    async def refresh(self) -> bool:
        """Re-reads the cluster's nodes; whether the inventory changed. Raises Unavailable when
        the cluster is unreachable; a refresh unanswered for `refresh_seconds` ends the driver."""
        link = self.link
        if link is None:
            return False
        try:
            alive = await link.call("nodes", self.refresh_seconds)
        except TimeoutError:
            log.warning("the Ray cluster at %s did not answer; reconnecting", self.address)
            link.kill()
            raise
        return self._update([Node(**n) for n in alive])

    async def start(
        self,
        spec: TrainSpec,
        workdir: Path,
        attempt: int,
        registry_address: str,
        assignment: run_pb2.DeviceAssignment,
        cores_per_slot: int,
        environment: Mapping[str, str],
    ) -> Attempt:
        from google.protobuf import json_format

        hosts = {d.id: d.host for d in self._devices}
        placement = ray_ranks.plan(assignment, hosts)
        key = f"{spec.job_id}/{attempt}/{next(self._keys)}"
        link = self.link
        if link is None or link.closed:  # the cluster went away since the scheduler allocated
            lost = LinkedAttempt(key, None, [r.host for r in placement])
            lost.end(EXIT_NODE_LOST, lost.hosts, f"CLUSTER_LOST: {self.unavailable()}")
            return lost
        if self.checkpoint_uri:
            workdir = workdir / f"attempt-{attempt}"
        result = link.attempt(key, [r.host for r in placement])
        try:
            result.pids = await link.call(
                "start",
                key=key,
                ranks=[{"host": r.host, "ids": list(r.ids), "kind": r.kind} for r in placement],
                spec=spec.dumps(),
                workdir=str(workdir),
                attempt=attempt,
                registry=registry_address,
                assignment=json_format.MessageToDict(assignment),
                environment=dict(with_store(environment, self.checkpoint_uri)),
                # With a store, nothing a rank reads is on another node's disk: each has its own.
                own_directories=bool(self.checkpoint_uri),
            )
        except Exception:
            link.attempts.pop(key, None)
            if link.closed:  # gone while starting: the attempt was ended CLUSTER_LOST
                return result
            raise
        return result

    def forget(self, host: str) -> None:
        """Drops a node that left the cluster from the inventory (in place: it is the
        scheduler's list), so no job is placed on it again; its held devices go with it."""
        self._devices[:] = [d for d in self._devices if d.host != host]
        self.nodes = [n for n in self.nodes if n.host != host]

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self.link is not None:
            await self.link.close()
