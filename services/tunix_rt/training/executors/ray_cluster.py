"""A Ray cluster as the training service sees it: its alive nodes and the devices they give the
inventory (ray_executor.py), read in the Ray driver process (ray_driver.py).

Each GPU, and each CPU (one slot per core Ray schedules), becomes a device with a service-wide id
(`gpu:0..`, `cpu:0..`) and its node (`Device.host`, `{address}/{node id}`); the scheduler
allocates them as it allocates a host's.

A cluster on loopback addresses (the tests, `--ray auto`) keeps every Ray process on 127.0.0.1:
Ray otherwise rewrites a loopback bootstrap address to the machine's routable one, which a head
bound to 127.0.0.1 does not listen on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tunix_rt.training.scheduler import Device

LOOPBACK = "127.0.0.1"
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
