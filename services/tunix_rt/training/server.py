"""The training server: devices → scheduler → job manager (recovering this service's jobs from the
registry) → servicer → grpc.aio server.

Run it with `tunix-rt serve training [--host --port --registry ADDR --data-dir DIR --cpu-slots N]`;
with `--ray ADDRESS` (or `auto`) its jobs run on a Ray cluster's nodes (training.executors).
The data directory holds this service's identity (so a restart recovers its own jobs) and each
job's working directory (spec, worker logs, checkpoints, the final model). The registry, the
workers and evaluation on completion are dialled with the service's own bearer token and
$TUNIX_RT_TLS_CA (common.outgoing).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

from tunix_rt.common.config import ServerConfig, from_env
from tunix_rt.common.outgoing import OutgoingSettings
from tunix_rt.common.server import RunningServer, ServiceRegistration, run, start_server
from tunix_rt.training.completion_eval import INFERENCE_ENV
from tunix_rt.training.executors.base import Executor, LocalExecutor
from tunix_rt.training.jobs import JobManager
from tunix_rt.training.registry_link import RegistryLink
from tunix_rt.training.scheduler import Scheduler
from tunix_rt.training.servicer import TrainingServicer
from tunix_rt.training.sweeps.manager import SweepManager
from tunix_rt.v1 import training_service_pb2_grpc

SERVICE_NAME = "tunix_rt.v1.TrainingService"
DEFAULT_DATA_DIR = Path("data") / "training"
DEFAULT_REGISTRY = "127.0.0.1:50051"


def instance_id(data_dir: Path) -> str:
    """This service's stable identity, kept in its data directory: the owner of its runs."""
    path = data_dir / "instance-id"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}\n")
    return f"training/{path.read_text().strip()}"


async def build_manager(
    registry_settings: OutgoingSettings,
    data_dir: Path,
    cpu_slots: int,
    probe_gpus: bool = True,
    inference_address: str | None = None,
    event_flush_interval: float | None = None,
    ray_address: str = "",
    checkpoint_uri: str = "",
) -> JobManager:
    registry = RegistryLink(registry_settings)
    # Absolute: workers run in job directories under it, and Orbax refuses relative checkpoint
    # paths (`serve training --data-dir data/training` as the README writes it).
    data_dir = await asyncio.to_thread(data_dir.resolve)
    executor = await asyncio.to_thread(
        make_executor, ray_address, cpu_slots, probe_gpus, checkpoint_uri
    )
    await executor.open()
    cores = max(1, (os.cpu_count() or 1) // max(1, cpu_slots))
    manager = JobManager(
        registry,
        Scheduler(
            executor.devices(), place=lambda: executor.place, unavailable=executor.unavailable
        ),
        data_dir,
        owner=instance_id(data_dir),
        host=socket.gethostname(),
        cores_per_slot=cores,
        # Evaluation on completion goes to this inference service (flag, else the environment).
        inference_address=inference_address or os.environ.get(INFERENCE_ENV) or "",
        event_flush_interval=event_flush_interval,
        executor=executor,
    )
    await manager.recover()
    return manager


def make_executor(
    ray_address: str, cpu_slots: int, probe_gpus: bool, checkpoint_uri: str = ""
) -> Executor:
    """The Ray cluster's executor with `ray_address`, else this host's (blocking); workers copy
    checkpoints to `checkpoint_uri` when given (checkpoint_store)."""
    if not ray_address:
        return LocalExecutor.of_host(cpu_slots, probe_gpus, checkpoint_uri)
    from tunix_rt.training.executors.ray_executor import RayExecutor

    return RayExecutor(ray_address, checkpoint_uri)


async def build_sweeps(manager: JobManager) -> SweepManager:
    """The sweeps over `manager`, continuing this service's unfinished ones (after the manager
    recovered their trials' jobs)."""
    sweeps = SweepManager(manager)
    await sweeps.recover()
    return sweeps


def registrations(manager: JobManager, sweeps: SweepManager) -> list[ServiceRegistration]:
    servicer = TrainingServicer(manager, sweeps)
    add = training_service_pb2_grpc.add_TrainingServiceServicer_to_server

    async def started(running: RunningServer) -> None:
        follow(manager.executor, running)

    return [ServiceRegistration(SERVICE_NAME, lambda server: add(servicer, server), started)]  # type: ignore[no-untyped-call]


def follow(executor: Executor, running: RunningServer) -> None:
    """The server's health follows the executor's: NOT_SERVING (the server and this service)
    while the Ray cluster it runs jobs on is unreachable, SERVING again once it is back."""
    pending: set[asyncio.Task[None]] = set()

    def tell(serving: bool) -> None:
        for name in ("", SERVICE_NAME):
            task = asyncio.ensure_future(running.set_serving(serving, name))
            pending.add(task)
            task.add_done_callback(pending.discard)

    executor.subscribe(tell)
    if executor.unavailable():
        tell(False)


class RunningTraining:
    """A started training server, its job manager and sweeps; `stop` shuts them down."""

    def __init__(self, server: RunningServer, manager: JobManager, sweeps: SweepManager) -> None:
        self.server = server
        self.manager = manager
        self.sweeps = sweeps

    @property
    def address(self) -> str:
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.sweeps.close()  # first: a sweep must not see its trials requeued as ended
        await self.manager.close()
        await self.manager.registry.close()


async def start_training(
    *,
    registry_address: str,
    data_dir: Path,
    cpu_slots: int = 1,
    host: str = "127.0.0.1",
    port: int = 0,
    probe_gpus: bool = True,
    inference_address: str | None = None,
    config: ServerConfig | None = None,
    event_flush_interval: float | None = None,
    ray_address: str = "",
    checkpoint_uri: str = "",
) -> RunningTraining:
    """Starts a training service (tests, `tunix-rt up`); `config` overrides host and port, and
    its token and TLS CA are also how the service dials the registry and inference.
    `event_flush_interval` is the seconds between batches of job events to the registry
    (default event_hub.FLUSH_INTERVAL). `ray_address` runs jobs on that Ray cluster;
    `checkpoint_uri` is where workers copy checkpoints (an fsspec URI)."""
    server_config = config or ServerConfig(host=host, port=port)
    manager = await build_manager(
        OutgoingSettings.of_server(registry_address, server_config),
        data_dir,
        cpu_slots,
        probe_gpus,
        inference_address,
        event_flush_interval,
        ray_address,
        checkpoint_uri,
    )
    try:
        sweeps = await build_sweeps(manager)
    except BaseException:
        await manager.close()
        await manager.registry.close()
        raise
    try:
        server = await start_server(server_config, "training", registrations(manager, sweeps))
    except BaseException:
        await sweeps.close()
        await manager.close()
        await manager.registry.close()
        raise
    return RunningTraining(server, manager, sweeps)


def run_training(
    host: str | None,
    port: int | None,
    registry: str | None,
    data_dir: Path | None,
    cpu_slots: int | None,
    metrics_port: int | None,
    inference: str | None = None,
    ray: str | None = None,
    checkpoint_uri: str | None = None,
) -> None:
    """Serves until SIGTERM or SIGINT (the body of `tunix-rt serve training`)."""
    config: ServerConfig = from_env("training", host=host, port=port, metrics_port=metrics_port)
    address = registry or os.environ.get("TUNIX_RT_REGISTRY") or DEFAULT_REGISTRY
    directory = data_dir or Path(os.environ.get("TUNIX_RT_TRAINING_DATA_DIR") or DEFAULT_DATA_DIR)
    slots = cpu_slots or int(os.environ.get("TUNIX_RT_CPU_SLOTS") or 1)
    holder: list[tuple[JobManager, SweepManager]] = []

    async def build() -> list[ServiceRegistration]:
        registry_settings = OutgoingSettings.of_server(address, config)
        manager = await build_manager(
            registry_settings,
            directory,
            slots,
            inference_address=inference,
            ray_address=ray or os.environ.get("TUNIX_RT_RAY") or "",
            checkpoint_uri=checkpoint_uri or os.environ.get("TUNIX_RT_CHECKPOINT_URI") or "",
        )
        sweeps = await build_sweeps(manager)
        holder.append((manager, sweeps))
        return registrations(manager, sweeps)

    async def close() -> None:
        for manager, sweeps in holder:
            await sweeps.close()
            await manager.close()
            await manager.registry.close()

    run(config, "training", build, on_shutdown=close)
