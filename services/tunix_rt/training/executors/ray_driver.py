"""The Ray driver process: the training service's one connection to a Ray cluster, run apart from
the service (`python -m tunix_rt.training.executors.ray_driver ADDRESS`, started by ray_link.py).

Why a process of its own: Ray's core worker ends the process it lives in when the cluster's GCS
stays unreachable (`gcs_rpc_server_reconnect_timeout_s`, 60 s by default) or its raylet dies. In
the service that would take the whole training service down with the cluster; here it ends this
process, and the service goes NOT_SERVING, requeues the jobs that ran on the cluster and starts a
new driver with backoff until the cluster answers again.

Protocol (JSON lines): requests on stdin, `{"id": n, "op": ..., ...}`; on the original stdout
(stdout itself goes to stderr, so nothing Ray prints can corrupt a line):
- `{"ready": [node, ...]}` once connected (alive_nodes, as dicts);
- `{"id": n, "result": ...}` or `{"id": n, "error": {"message", "reason"}}`;
- `{"attempt": key, "event": {...}}`: rank 0's protocol events of a started attempt;
- `{"lost_node": host}`: a rank's node left the cluster;
- `{"attempt": key, "ended": code, "lost_nodes": [...]}`: every rank of the attempt has ended.
The process ends when stdin closes (the service went away); its rank actors and spares
(ray_hosts.py), owned by this driver, die with it, and each worker dies with its actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from google.protobuf import json_format

from tunix_rt.common.errors import TunixError
from tunix_rt.training.executors import ray_ranks
from tunix_rt.training.executors.ray_cluster import LOOPBACK, Node, alive_nodes, import_ray
from tunix_rt.training.executors.ray_hosts import HostPool
from tunix_rt.training.spec import TrainSpec
from tunix_rt.training.worker import die_with_parent
from tunix_rt.v1 import run_pb2


class Driver:
    """Serves the service's requests on one Ray connection (see the module docstring)."""

    def __init__(self, ray: Any, out: IO[bytes]) -> None:
        self.ray = ray
        self.out = out
        self.pool = HostPool(ray)
        self.attempts: dict[str, ray_ranks.RayAttempt] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message).encode() + b"\n")
        self.out.flush()

    def seen(self, nodes: list[Node]) -> list[dict[str, Any]]:
        """The cluster's alive `nodes` as the protocol sends them; the rank actor spares follow
        them (one on each node with CPUs). On the event loop, as every use of the pool."""
        self.pool.keep(n.node_id for n in nodes if n.cpus)
        return [asdict(n) for n in nodes]

    async def handle(self, request: dict[str, Any]) -> None:
        try:
            result = await self._do(request)
        except TunixError as exc:
            self.send({"id": request["id"], "error": {"message": str(exc), "reason": exc.reason}})
        except Exception as exc:
            self.send({"id": request["id"], "error": {"message": f"{type(exc).__name__}: {exc}"}})
        else:
            self.send({"id": request["id"], "result": result})

    async def _do(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "nodes":
            return self.seen(await asyncio.to_thread(alive_nodes, self.ray))
        if op == "start":
            return await self._start(request)
        attempt = self.attempts.get(request["key"])
        if attempt is None:
            return None
        if op == "ask_to_stop":
            attempt.ask_to_stop()
        elif op == "stop":
            attempt.stop(float(request["grace"]))
        elif op == "close":
            await attempt.close()
            self.attempts.pop(request["key"], None)
        return None

    async def _start(self, request: dict[str, Any]) -> list[int]:
        key = request["key"]
        ranks = [ray_ranks.Rank(r["host"], tuple(r["ids"]), r["kind"]) for r in request["ranks"]]
        attempt = await ray_ranks.start(
            self.pool,
            ranks,
            TrainSpec.from_json(json.loads(request["spec"])),
            Path(request["workdir"]),
            int(request["attempt"]),
            request["registry"],
            json_format.ParseDict(request["assignment"], run_pb2.DeviceAssignment()),
            request["environment"],
            lambda host: self.send({"lost_node": host}),
            own_directories=bool(request["own_directories"]),
        )
        self.attempts[key] = attempt
        task = asyncio.get_running_loop().create_task(self._forward(key, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return attempt.pids

    async def _forward(self, key: str, attempt: ray_ranks.RayAttempt) -> None:
        async for event in attempt.reports():
            self.send({"attempt": key, "event": event})
        code = await attempt.wait()
        self.send({"attempt": key, "ended": code, "lost_nodes": attempt.lost_nodes})


def connect(address: str) -> Any:
    """`ray`, connected as a driver to the cluster at `address` ("auto": a one-node Ray head
    started here, for trying it)."""
    ray = import_ray(address)
    ray.init(
        address="local" if address == "auto" else address,
        _node_ip_address=LOOPBACK if address == "auto" else None,
        include_dashboard=False,
        # Workers' output goes to their job's log files, not this process's stderr.
        log_to_driver=False,
        # Placement group names (`tunix-rt/{job}/{attempt}`) apart from other drivers'.
        namespace="tunix-rt",
    )
    return ray


async def serve(driver: Driver) -> None:
    """Handles requests from stdin until it closes; each request runs as its own task, so a
    slow start (a placement group being reserved) does not hold up a stop."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    while line := await loop.run_in_executor(None, sys.stdin.buffer.readline):
        task = loop.create_task(driver.handle(json.loads(line)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for attempt in list(driver.attempts.values()):
        with contextlib.suppress(Exception):
            await attempt.close()
    driver.pool.close()


def main() -> None:
    die_with_parent()
    # The protocol owns the real stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    ray = connect(sys.argv[1])
    driver = Driver(ray, out)
    driver.send({"ready": driver.seen(alive_nodes(ray))})
    asyncio.run(serve(driver))
    ray.shutdown()


if __name__ == "__main__":
    main()
