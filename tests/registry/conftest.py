"""Fixtures: a real registry server on loopback, on SQLite and on PostgreSQL, and a real client."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.registry.helpers import SHIPPED_TRACES, import_data, read_rows, unique
from tests.support import LoopThread, postgres_database
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.v1 import registry_service_pb2 as pb
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
    yield registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
    channel.close()


@dataclass(frozen=True)
class ImportedFile:
    """A file of traces imported once into a module's server under its own `source`."""

    source: str
    rows: list[dict[str, Any]]
    response: pb.ImportTracesResponse


@pytest.fixture(scope="module")
def train_rows() -> list[dict[str, Any]]:
    """The 2,000 rows of the shipped datasets/reasoning-train-v1.jsonl, parsed."""
    return read_rows(SHIPPED_TRACES)


@pytest.fixture(scope="module")
def train_import(
    stub: registry_service_pb2_grpc.RegistryServiceStub, train_rows: list[dict[str, Any]]
) -> ImportedFile:
    """reasoning-train-v1.jsonl imported once per module (and backend), in one message."""
    source = unique("train")
    response = import_data(stub, SHIPPED_TRACES.read_bytes(), source=source)
    assert response.imported_count == len(train_rows), list(response.errors)[:5]
    return ImportedFile(source, train_rows, response)


@pytest.fixture(scope="module")
def artifact(stub: registry_service_pb2_grpc.RegistryServiceStub) -> str:
    """The name of a small stored artifact, for model versions to point at."""
    data = f"weights {unique()}".encode()
    response = stub.UploadArtifact(
        iter(
            [
                pb.UploadArtifactRequest(
                    header=pb.ArtifactHeader(sha256=hashlib.sha256(data).hexdigest())
                ),
                pb.UploadArtifactRequest(chunk=data),
            ]
        )
    )
    name: str = response.artifact.name
    return name
