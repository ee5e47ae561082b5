"""Fixtures: a real registry server on loopback, on SQLite and on PostgreSQL, and a real client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.support import LoopThread, postgres_database
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.v1 import registry_service_pb2_grpc


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def registry_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRegistry]:
    """A registry serving on 127.0.0.1:0 with its data in a fresh directory and database."""
    loop = LoopThread()
    data_dir: Path = tmp_path_factory.mktemp("registry")
    try:
        if request.param == "postgres":
            with postgres_database() as url:
                running = loop.run(start_registry(data_dir=data_dir, database_url=url))
                yield running
                loop.run(running.stop(0))
        else:
            running = loop.run(start_registry(data_dir=data_dir))
            yield running
            loop.run(running.stop(0))
    finally:
        loop.close()


@pytest.fixture(scope="module")
def stub(
    registry_server: RunningRegistry,
) -> Iterator[registry_service_pb2_grpc.RegistryServiceStub]:
    """A generated client stub on a plain channel to the registry."""
    channel = grpc.insecure_channel(registry_server.address)
    yield registry_service_pb2_grpc.RegistryServiceStub(channel)
    channel.close()
