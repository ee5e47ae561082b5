"""The registry server: config → database (migrated) + blob store → servicer → grpc.aio server.

Run it with `tunix-rt serve registry [--host --port --data-dir --database-url]`. By default the
data directory (`./data/registry`, or TUNIX_RT_DATA_DIR) holds the SQLite file and the blob store;
`--database-url` (or TUNIX_RT_DATABASE_URL) points it at PostgreSQL instead, e.g.
`postgresql+psycopg://user@host/db`. TUNIX_RT_MAX_ARTIFACT_BYTES (`max_artifact_bytes`) bounds
the size of one uploaded artifact, 4 GiB by default.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

from tunix_rt.common.config import ConfigError, ServerConfig, from_env
from tunix_rt.common.server import RunningServer, ServiceRegistration, run, start_server
from tunix_rt.registry.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
from tunix_rt.registry.blob_store import BlobStore
from tunix_rt.registry.registry import Registry
from tunix_rt.registry.servicer import RegistryServicer
from tunix_rt.registry.storage.engine import default_sqlite_url, upgrade
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.v1 import registry_service_pb2_grpc

SERVICE_NAME = "tunix_rt.v1.RegistryService"
DEFAULT_DATA_DIR = Path("data") / "registry"
MAX_ARTIFACT_BYTES_ENV = "TUNIX_RT_MAX_ARTIFACT_BYTES"


def resolve_storage(data_dir: Path | None, database_url: str | None) -> tuple[Path, str]:
    """The data directory and database URL, from arguments, then environment, then defaults."""
    directory = data_dir or Path(os.environ.get("TUNIX_RT_DATA_DIR") or DEFAULT_DATA_DIR)
    url = database_url or os.environ.get("TUNIX_RT_DATABASE_URL") or default_sqlite_url(directory)
    return directory, url


def resolve_max_artifact_bytes(value: int | None) -> int:
    """The largest artifact an upload may store: the argument, then TUNIX_RT_MAX_ARTIFACT_BYTES,
    then the default; ConfigError unless a positive integer (bytes)."""
    given: object = value
    where = "max_artifact_bytes"
    if value is None:
        raw = os.environ.get(MAX_ARTIFACT_BYTES_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_ARTIFACT_BYTES
        given, where = raw, MAX_ARTIFACT_BYTES_ENV
        value = int(raw) if raw.isascii() and raw.isdigit() else None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} must be a positive number of bytes, got {given!r}")
    return value


def open_registry(
    data_dir: Path, database_url: str, max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
) -> Registry:
    """Migrates the database to the current schema and opens the registry over it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(database_url)
    return Registry(
        Repository(database_url),
        BlobStore(data_dir / "artifacts"),
        max_artifact_bytes=max_artifact_bytes,
    )


def registrations(registry: Registry) -> list[ServiceRegistration]:
    servicer = RegistryServicer(registry)
    return [
        ServiceRegistration(
            SERVICE_NAME,
            lambda server: registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(  # type: ignore[no-untyped-call]
                servicer, server
            ),
        )
    ]


class RunningRegistry:
    """A started registry server and what it owns; `stop` closes both."""

    def __init__(self, server: RunningServer, registry: Registry) -> None:
        self.server = server
        self.registry = registry

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        self.registry.close()


async def start_registry(
    *,
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    database_url: str | None = None,
    config: ServerConfig | None = None,
    max_artifact_bytes: int | None = None,
) -> RunningRegistry:
    """Starts a registry (used by tests and `tunix-rt up`); `config` overrides host and port."""
    directory, url = resolve_storage(data_dir, database_url)
    limit = resolve_max_artifact_bytes(max_artifact_bytes)
    registry = await asyncio.to_thread(open_registry, directory, url, limit)
    server_config = config or ServerConfig(host=host, port=port)
    server = await start_server(server_config, "registry", registrations(registry))
    return RunningRegistry(server, registry)


def run_registry(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    metrics_port: int | None,
    max_artifact_bytes: int | None = None,
) -> None:
    """Serves until SIGTERM or SIGINT (the body of `tunix-rt serve registry`)."""
    config = from_env("registry", host=host, port=port, metrics_port=metrics_port)
    directory, url = resolve_storage(data_dir, database_url)
    limit = resolve_max_artifact_bytes(max_artifact_bytes)
    holder: list[Registry] = []

    async def build() -> list[ServiceRegistration]:
        registry = await asyncio.to_thread(open_registry, directory, url, limit)
        holder.append(registry)
        return registrations(registry)

    async def close() -> None:
        for registry in holder:
            registry.close()

    run(dataclasses.replace(config), "registry", build, on_shutdown=close)
