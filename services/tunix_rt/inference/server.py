"""The inference server: a registry channel → the model store → InferenceService and the Open
Inference Protocol service on one grpc.aio server.

Run it with `tunix-rt serve inference [--host --port --registry ADDR --data-dir DIR
--memory-budget 4GiB]`. The data directory holds the local artifact cache
(`artifacts/<sha256>/`); the memory budget bounds the models held in memory. The registry is
dialled with the service's own bearer token and $TUNIX_RT_TLS_CA (common.outgoing).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from tunix_rt.common import outgoing
from tunix_rt.common.blocking import BlockingPool
from tunix_rt.common.config import ConfigError, ServerConfig, from_env
from tunix_rt.common.server import RunningServer, ServiceRegistration, run, start_server
from tunix_rt.inference.model_store import ModelStore
from tunix_rt.inference.oip import SERVICE_NAME as OIP_SERVICE_NAME
from tunix_rt.inference.oip import OipServicer
from tunix_rt.inference.servicer import InferenceServicer
from tunix_rt.v1 import (
    inference_service_pb2_grpc,
    oip_grpc_service_pb2_grpc,
    registry_service_pb2_grpc,
)

SERVICE_NAME = "tunix_rt.v1.InferenceService"
DEFAULT_DATA_DIR = Path("data") / "inference"
DEFAULT_REGISTRY = "127.0.0.1:50051"
DEFAULT_MEMORY_BUDGET = "4GiB"
# `serve inference` and `up` compile batch buckets up to 16 rows while a model loads (tens of
# seconds on a 2-core CPU for a small model), so concurrent requests never wait on XLA; tests and
# embedded uses start with 0 (compile on first use) unless they ask.
DEFAULT_WARMUP_BATCH = 16
DATA_DIR_ENV = "TUNIX_RT_INFERENCE_DATA_DIR"
MEMORY_BUDGET_ENV = "TUNIX_RT_INFERENCE_MEMORY_BUDGET"

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes of a size such as `4GiB`, `512MiB`, `2.5GB` or `1000000`; ConfigError otherwise."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(f"{text!r} is not a size such as 4GiB, 512MiB or 1000000")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"the memory budget must be positive, got {text!r}")
    return value


def registry_stub(settings: outgoing.OutgoingSettings) -> tuple[Any, grpc.Channel]:
    """A synchronous registry stub (the store and evaluation call it from worker threads)."""
    channel = outgoing.sync_channel(settings, outgoing.REGISTRY)
    new_stub: Any = registry_service_pb2_grpc.RegistryServiceStub
    return new_stub(channel), channel


@dataclass
class InferenceDeps:
    """What the servicers share; `close` releases it."""

    store: ModelStore
    registry_stub: Any
    channel: grpc.Channel
    # The servicers' threads for blocking work (the store, registry calls): see common.blocking.
    blocking: BlockingPool = field(default_factory=lambda: BlockingPool("inference"))

    def close(self) -> None:
        self.store.close()
        self.channel.close()


def build_deps(
    registry: outgoing.OutgoingSettings,
    data_dir: Path,
    memory_budget_bytes: int,
    warmup_batch: int = 0,
) -> InferenceDeps:
    stub, channel = registry_stub(registry)
    store = ModelStore(stub, data_dir, memory_budget_bytes, warmup_batch=warmup_batch)
    return InferenceDeps(store, stub, channel)


def registrations(deps: InferenceDeps) -> list[ServiceRegistration]:
    inference = InferenceServicer(deps.store, deps.registry_stub, deps.blocking)
    standard = OipServicer(deps.store, deps.registry_stub, deps.blocking)
    add_inference = inference_service_pb2_grpc.add_InferenceServiceServicer_to_server
    add_oip = oip_grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server
    return [
        ServiceRegistration(SERVICE_NAME, lambda server: add_inference(inference, server)),  # type: ignore[no-untyped-call]
        ServiceRegistration(OIP_SERVICE_NAME, lambda server: add_oip(standard, server)),  # type: ignore[no-untyped-call]
    ]


class RunningInference:
    """A started inference server and its model store; `stop` shuts both down."""

    def __init__(self, server: RunningServer, deps: InferenceDeps) -> None:
        self.server = server
        self.deps = deps

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def store(self) -> ModelStore:
        return self.deps.store

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        self.deps.close()


async def start_inference(
    *,
    registry_address: str,
    data_dir: Path,
    memory_budget_bytes: int = parse_size(DEFAULT_MEMORY_BUDGET),
    host: str = "127.0.0.1",
    port: int = 0,
    auth_token: str | None = None,
    warmup_batch: int = 0,
    config: ServerConfig | None = None,
) -> RunningInference:
    """Starts an inference service (tests, `tunix-rt up`); `config` overrides host, port and
    auth_token, and its token and TLS CA are also how the service dials the registry."""
    server_config = config or ServerConfig(host=host, port=port, auth_token=auth_token)
    registry = outgoing.OutgoingSettings.of_server(registry_address, server_config)
    deps = build_deps(registry, data_dir, memory_budget_bytes, warmup_batch)
    try:
        server = await start_server(server_config, "inference", registrations(deps))
    except BaseException:
        deps.close()
        raise
    return RunningInference(server, deps)


def run_inference(
    host: str | None,
    port: int | None,
    registry: str | None,
    data_dir: Path | None,
    memory_budget: str | None,
    metrics_port: int | None,
    warmup_batch: int | None = None,
) -> None:
    """Serves until SIGTERM or SIGINT (the body of `tunix-rt serve inference`)."""
    config: ServerConfig = from_env("inference", host=host, port=port, metrics_port=metrics_port)
    address = registry or os.environ.get("TUNIX_RT_REGISTRY") or DEFAULT_REGISTRY
    directory = data_dir or Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    budget = parse_size(memory_budget or os.environ.get(MEMORY_BUDGET_ENV) or DEFAULT_MEMORY_BUDGET)
    holder: list[InferenceDeps] = []

    async def build() -> list[ServiceRegistration]:
        deps = build_deps(
            outgoing.OutgoingSettings.of_server(address, config),
            directory,
            budget,
            DEFAULT_WARMUP_BATCH if warmup_batch is None else warmup_batch,
        )
        holder.append(deps)
        return registrations(deps)

    async def close() -> None:
        for deps in holder:
            deps.close()

    run(config, "inference", build, on_shutdown=close)
