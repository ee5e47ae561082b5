"""The executor interface, and the local executor: one worker process on this host per attempt.

An Attempt is one run of a job's workers as the job manager sees it: the protocol events of rank
0 (worker_protocol), a way to ask every rank to stop or to stop them by force, and an exit code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from tunix_rt.training import worker_process
from tunix_rt.training.checkpoint_store import URI_ENV
from tunix_rt.training.devices import inventory
from tunix_rt.training.scheduler import Device
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import run_pb2

# The exit code of an attempt that lost a rank's node (no worker exit code exists): the job is
# requeued and resumes from its latest checkpoint on the nodes it is given next.
EXIT_NODE_LOST = 75


class Attempt(Protocol):
    """The workers of one attempt of a job."""

    @property
    def pid(self) -> int:
        """Rank 0's worker process id on its node."""

    @property
    def returncode(self) -> int | None:
        """The attempt's exit code once it ended, else None."""

    @property
    def interruption(self) -> str:
        """Why the attempt ended through no fault of its own (`NODE_LOST: …`, `CLUSTER_LOST:
        …`): the job is requeued to resume from its latest checkpoint; "" otherwise."""

    def reports(self) -> AsyncIterator[dict[str, Any]]:
        """Rank 0's protocol events until every rank has ended."""

    async def wait(self) -> int:
        """The exit code: rank 0's, else the first failed rank's, EXIT_NODE_LOST for a lost
        node; waits for every rank."""

    def ask_to_stop(self) -> None:
        """SIGTERM to every rank: they stop together at the next step."""

    def stop(self, grace_seconds: float) -> None:
        """ask_to_stop, then kill every rank still running after `grace_seconds`."""

    async def close(self) -> None:
        """Releases what the attempt held beyond its processes (a placement group)."""


class Executor(Protocol):
    """Starts attempts on devices the scheduler allocated from `devices()`."""

    @property
    def place(self) -> str:
        """`this host`, or the cluster as it is now, for the never-fits refusal."""

    # Seconds between inventory refreshes; 0: the inventory is fixed (this host's).
    inventory_interval: float

    def devices(self) -> list[Device]:
        """The inventory the scheduler allocates from (the same list, changed in place)."""

    def unavailable(self) -> str:
        """Why no job can be submitted now (a cluster that does not answer); "" when one can."""

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        """`listener(serving)` is called on the event loop each time the executor loses or
        regains what it runs jobs on (never, for a host)."""

    async def open(self) -> None:
        """Connects to what runs the jobs (called once, on the event loop, before recovery)."""

    async def refresh(self) -> bool:
        """Re-reads the inventory (nodes that joined or left a cluster); whether it changed."""

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
        """Starts the workers of `attempt` on the devices of `assignment`."""

    async def close(self) -> None:
        """Releases the executor's own resources at service shutdown."""


class LocalAttempt:
    """One worker process on this host (worker_process)."""

    def __init__(self, process: worker_process.Process) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def interruption(self) -> str:
        return ""  # this host: its loss is the service's own

    def reports(self) -> AsyncIterator[dict[str, Any]]:
        return worker_process.reports(self.process)

    async def wait(self) -> int:
        return await self.process.wait()

    def ask_to_stop(self) -> None:
        worker_process.ask_to_stop(self.process)

    def stop(self, grace_seconds: float) -> None:
        worker_process.stop(self.process, grace_seconds)

    async def close(self) -> None:
        return None


class LocalExecutor:
    """This host's devices (devices.inventory) and one worker process per attempt."""

    place = "this host"
    inventory_interval = 0.0  # a host's devices are taken once, at start

    def __init__(self, devices: list[Device], checkpoint_uri: str = "") -> None:
        self._inventory = devices
        self.checkpoint_uri = checkpoint_uri  # workers copy checkpoints there (checkpoint_store)

    @classmethod
    def of_host(
        cls, cpu_slot_count: int, probe_gpus: bool = True, checkpoint_uri: str = ""
    ) -> LocalExecutor:
        """This host's inventory (blocking: it probes the GPUs and the CPU's peak)."""
        return cls(inventory(cpu_slot_count, probe_gpus), checkpoint_uri)

    def devices(self) -> list[Device]:
        return self._inventory

    def unavailable(self) -> str:
        return ""

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        return None  # a host's devices do not come and go

    async def open(self) -> None:
        return None

    async def refresh(self) -> bool:
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
        environment = with_store(environment, self.checkpoint_uri)
        process = await worker_process.start(
            spec, workdir, attempt, registry_address, assignment, cores_per_slot, environment
        )
        return LocalAttempt(process)

    async def close(self) -> None:
        return None


def with_store(environment: Mapping[str, str], checkpoint_uri: str) -> Mapping[str, str]:
    """A worker's environment naming the checkpoint store, when there is one."""
    return {**environment, URI_ENV: checkpoint_uri} if checkpoint_uri else environment


def assignment_of(devices: list[Device], host: str) -> run_pb2.DeviceAssignment:
    """What a job was given, as its run records it: its devices, and its host, or the nodes
    (`{address}/{node id}`, comma-separated) its devices are on under the Ray executor."""
    nodes = list(dict.fromkeys(d.host for d in devices if d.host))
    return run_pb2.DeviceAssignment(
        kind=devices[0].kind,
        count=len(devices),
        ids=[d.id for d in devices],
        platform=devices[0].platform,
        host=",".join(nodes) or host,
    )


def nodes_of(devices: list[Device]) -> dict[str, Any]:
    """`{"nodes": [{"node", "devices"}]}`, the nodes of a Ray placement and the device ids on
    each, for the job's run config; nothing on this host (its config is as before)."""
    nodes: dict[str, list[str]] = {}
    for device in devices:
        if device.host:
            nodes.setdefault(device.host, []).append(device.id)
    listed = [{"node": node, "devices": ids} for node, ids in nodes.items()]
    return {"nodes": listed} if listed else {}
