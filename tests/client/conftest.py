"""Fixtures of the client tests: a real registry server on 127.0.0.1:0 with a fresh data directory.

The server runs on its own asyncio event loop in a background thread, once per session; tests keep
out of each other's way by tagging what they create with a unique source or id. Tests that need it
are skipped where `tunix_rt.registry.server` is not installed (a client-only install).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.support import LoopThread
from tunix_rt.client.cli import main
from tunix_rt.client.registry import RegistryClient

# Starting the server (migrations included) and stopping it gracefully take well under this.
SERVER_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def registry_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a running registry with an embedded SQLite database. The client does not
    care which database is behind the server; tests/registry runs the server on both."""
    server = pytest.importorskip(
        "tunix_rt.registry.server",
        reason="the registry server is not installed",
        exc_type=ModuleNotFoundError,
    )
    loop = LoopThread()
    try:
        data_dir = tmp_path_factory.mktemp("registry-data")
        running = loop.run(server.start_registry(data_dir=data_dir), SERVER_TIMEOUT_S)
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
    """A unique label for this test's traces, datasets and models."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cli(registry_address: str) -> Callable[..., Result]:
    """Runs `tunix-rt --registry ADDR ARGS…` in-process and returns click's Result."""

    def run(*args: str | Path) -> Result:
        argv = ["--registry", registry_address, *(str(a) for a in args)]
        return CliRunner().invoke(main, argv)

    return run
