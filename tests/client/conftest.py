"""Fixtures of the client tests: a real registry server on 127.0.0.1:0 with a fresh data directory.

The server runs on its own asyncio event loop in a background thread, once per session; tests keep
out of each other's way by tagging what they create with a unique source or id. Tests that need it
are skipped while `tunix_rt.registry.server` does not exist.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tunix_rt.client.cli import main
from tunix_rt.client.registry import RegistryClient

# Starting the server (migrations included) and stopping it gracefully take well under this.
SERVER_START_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def registry_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a running registry with an embedded SQLite database."""
    server = pytest.importorskip(
        "tunix_rt.registry.server",
        reason="the registry server is not written yet",
        exc_type=ModuleNotFoundError,
    )
    start = getattr(server, "start_registry", None)
    if start is None:
        pytest.skip("tunix_rt.registry.server has no start_registry yet")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="registry-loop", daemon=True)
    thread.start()
    try:
        data_dir = tmp_path_factory.mktemp("registry-data")
        running = asyncio.run_coroutine_threadsafe(start(data_dir=data_dir), loop).result(
            SERVER_START_TIMEOUT_S
        )
        try:
            yield str(running.address)
        finally:
            asyncio.run_coroutine_threadsafe(running.stop(1.0), loop).result(SERVER_START_TIMEOUT_S)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(SERVER_START_TIMEOUT_S)
        loop.close()


@pytest.fixture
def registry(registry_address: str) -> Iterator[RegistryClient]:
    with RegistryClient.connect(registry_address, timeout=30) as client:
        yield client


@pytest.fixture
def tag() -> str:
    """A unique label for this test's traces, datasets and models."""
    return f"t{uuid.uuid4().hex[:12]}"


CliRun = Callable[..., Result]


@pytest.fixture
def cli(registry_address: str) -> CliRun:
    """Runs `tunix-rt --registry ADDR ARGS…` in-process and returns click's Result."""

    def run(*args: str | Path) -> Result:
        argv = ["--registry", registry_address, *(str(a) for a in args)]
        return CliRunner().invoke(main, argv)

    return run
