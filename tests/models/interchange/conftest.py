"""A real registry server on loopback for the interchange tests, and the CLI pointed at it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.support import LoopThread
from tunix_rt.client.cli import main
from tunix_rt.client.registry import RegistryClient
from tunix_rt.registry.server import start_registry

SERVER_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def registry_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    loop = LoopThread()
    try:
        running = loop.run(
            start_registry(data_dir=tmp_path_factory.mktemp("registry")), SERVER_TIMEOUT_S
        )
        try:
            yield str(running.address)
        finally:
            loop.run(running.stop(1.0), SERVER_TIMEOUT_S)
    finally:
        loop.close()


@pytest.fixture
def registry(registry_address: str) -> Iterator[RegistryClient]:
    with RegistryClient.connect(registry_address, timeout=30) as client:
        yield client


@pytest.fixture
def tag() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cli(registry_address: str) -> Callable[..., Result]:
    """Runs `tunix-rt --registry ADDR ARGS…` in-process."""

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(main, ["--registry", registry_address, *map(str, args)])

    return run
