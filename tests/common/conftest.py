"""Fixtures: an asyncio loop on a background thread that runs real grpc.aio servers, so sync
tests can call them through ordinary (sync) gRPC clients."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import RunningServer, ServiceRegistration, start_server

from . import probe

T = TypeVar("T")


class LoopThread:
    """An event loop running forever on a daemon thread; `run` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run_soon(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `coro` on the loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


StartServer = Callable[..., RunningServer]


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture
def serve(loop_thread: LoopThread) -> Iterator[StartServer]:
    """`serve(config=..., registrations=...)` starts a real server on the loop thread; every server
    started is stopped at teardown. Defaults: 127.0.0.1:0 serving the Probe service."""
    started: list[RunningServer] = []

    def start(
        config: ServerConfig | None = None,
        registrations: Sequence[ServiceRegistration] | None = None,
        service_name: str = "probe",
    ) -> RunningServer:
        running = loop_thread.run(
            start_server(
                config or ServerConfig(host="127.0.0.1", port=0),
                service_name,
                [probe.registration()] if registrations is None else registrations,
            )
        )
        started.append(running)
        return running

    yield start
    for running in started:
        loop_thread.run(running.stop(0))
