"""The Ray executor: a Ray cluster's nodes as the training service's inventory, and attempts run as
ranks on them (ray_ranks.py).

`tunix-rt serve training --ray ADDRESS` connects this service to a running cluster as a Ray
driver (`ray start --head` on one machine, `ray start --address HEAD` on the others); `--ray
auto` starts a one-node Ray head in this process for trying it. The inventory is the cluster's
alive nodes: each GPU, and each CPU (one slot per core Ray schedules), becomes a device with a
service-wide id (`gpu:0..`, `cpu:0..`) and its node (`Device.host`, `{address}/{node id}`); the
scheduler allocates them as it allocates a host's. It is taken at start and refreshed every
INVENTORY_INTERVAL seconds (the job manager calls `refresh`): a node that joins adds its devices
under ids never used before (a node that comes back after a restart is a new Ray node), a node
that left takes its devices out, so a queued job that fits only with the new node starts, and a
job wider than the cluster is refused against what the cluster has now.

A cluster on loopback addresses (the tests, `--ray auto`) keeps every Ray process on 127.0.0.1:
Ray otherwise rewrites a loopback bootstrap address to the machine's routable one, which a head
bound to 127.0.0.1 does not listen on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunix_rt.training.executors.base import Attempt, with_store
from tunix_rt.training.scheduler import Device
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import run_pb2

LOOPBACK = "127.0.0.1"
# Seconds between inventory refreshes (one GCS call each), `TUNIX_RT_RAY_INVENTORY_SECONDS`.
INVENTORY_INTERVAL = float(os.environ.get("TUNIX_RT_RAY_INVENTORY_SECONDS") or 5.0)
# What keeps Ray from resolving 127.0.0.1 to the routable address (ray._private.services):
# read when `ray` is first imported, so it is set before that.
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray(address: str) -> Any:
    """`ray`, imported for a cluster at `address` ("auto", or host:port)."""
    if address == "auto" or address.startswith((f"{LOOPBACK}:", "localhost:")):
        os.environ.setdefault(_LOCAL_ONLY_ENV, "0")
    import ray

    return ray


@dataclass(frozen=True)
class Node:
    """An alive node of the cluster, as the inventory saw it."""

    node_id: str
    address: str
    cpus: int
    gpus: int

    @property
    def host(self) -> str:
        return f"{self.address}/{self.node_id}"


def alive_nodes(ray: Any) -> list[Node]:
    """The cluster's alive nodes in node id order, the head last: it also runs the cluster's
    control plane (GCS), so jobs land on the other nodes first."""
    nodes = [
        Node(
            node_id=str(n["NodeID"]),
            address=str(n["NodeManagerAddress"]),
            cpus=int(n["Resources"].get("CPU", 0)),
            gpus=int(n["Resources"].get("GPU", 0)),
        )
        for n in ray.nodes()
        if n["Alive"]
    ]
    head = {str(n["NodeID"]) for n in ray.nodes() if "node:__internal_head__" in n["Resources"]}
    return sorted(nodes, key=lambda n: (n.node_id in head, n.node_id))


def devices_of(nodes: list[Node], counts: dict[str, int] | None = None) -> list[Device]:
    """The devices of `nodes`: GPUs first (as devices.inventory lists a host's), then CPUs,
    numbered per kind from `counts` (the next free index of each kind, advanced in place)."""
    gpus = [(node, "gpu", "cuda") for node in nodes for _ in range(node.gpus)]
    cpus = [(node, "cpu", "cpu") for node in nodes for _ in range(node.cpus)]
    devices = []
    counts = {"gpu": 0, "cpu": 0} if counts is None else counts
    for node, kind, platform in gpus + cpus:
        devices.append(
            Device(id=f"{kind}:{counts[kind]}", kind=kind, platform=platform, host=node.host)
        )
        counts[kind] += 1
    return devices


def describe(nodes: list[Node]) -> str:
    """The cluster in a refusal: `this Ray cluster (2 nodes: 1 cpu, 1 cpu)`."""
    each = [
        ", ".join(f"{n} {k}" for k, n in (("gpu", x.gpus), ("cpu", x.cpus)) if n) for x in nodes
    ]
    return f"this Ray cluster ({len(nodes)} node(s): {'; '.join(e or 'nothing' for e in each)})"


class RayExecutor:
    """Runs attempts on a Ray cluster; see the module docstring."""

    def __init__(self, address: str, checkpoint_uri: str = "") -> None:
        self.address = address
        # With a checkpoint store each attempt has its own job directory, scratch space on its
        # node(s); without one the job directory must be on storage every node shares.
        self.checkpoint_uri = checkpoint_uri
        self.ray = import_ray(address)
        if not self.ray.is_initialized():
            self.ray.init(
                address="local" if address == "auto" else address,
                _node_ip_address=LOOPBACK if address == "auto" else None,
                include_dashboard=False,
                # Workers' output goes to their job's log files, not this service's stderr.
                log_to_driver=False,
                # Placement group names (`tunix-rt/{job}/{attempt}`) apart from other drivers'.
                namespace="tunix-rt",
            )
        self.inventory_interval = INVENTORY_INTERVAL
        self.nodes = alive_nodes(self.ray)
        self._next_index = {"gpu": 0, "cpu": 0}
        self._devices = devices_of(self.nodes, self._next_index)

    @property
    def place(self) -> str:
        """The cluster as it is now (nodes join and leave), for the never-fits refusal."""
        return describe(self.nodes)

    def devices(self) -> list[Device]:
        return self._devices

    async def refresh(self) -> bool:
        """Adds the devices of nodes that joined and forgets nodes that left (in place, on the
        event loop: the list is the scheduler's); whether anything changed. Raises what Ray
        raises when its GCS does not answer."""
        alive = await asyncio.to_thread(alive_nodes, self.ray)
        known = {n.host for n in self.nodes}
        joined = [n for n in alive if n.host not in known]
        left = known - {n.host for n in alive}
        for host in left:
            self.forget(host)
        self.nodes.extend(joined)
        self._devices.extend(devices_of(joined, self._next_index))
        return bool(joined or left)

    def healthy(self) -> bool:
        """Whether this service still reaches the cluster (its GCS answers)."""
        try:
            return bool(self.ray.is_initialized() and self.ray.nodes())
        except Exception:
            return False

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
        from tunix_rt.training.executors import ray_ranks

        hosts = {d.id: d.host for d in self._devices}
        placement = ray_ranks.plan(assignment, hosts)
        if self.checkpoint_uri:
            workdir = workdir / f"attempt-{attempt}"
        environment = with_store(environment, self.checkpoint_uri)
        return await ray_ranks.start(
            self.ray,
            placement,
            spec,
            workdir,
            attempt,
            registry_address,
            assignment,
            environment,
            self.forget,
            # With a store, nothing a rank reads is on another node's disk: each has its own.
            own_directories=bool(self.checkpoint_uri),
        )

    def forget(self, host: str) -> None:
        """Drops a node that left the cluster from the inventory (in place: it is the
        scheduler's list), so no job is placed on it again; its held devices go with it."""
        self._devices[:] = [d for d in self._devices if d.host != host]
        self.nodes = [n for n in self.nodes if n.host != host]

    async def close(self) -> None:
        await asyncio.sleep(0)
