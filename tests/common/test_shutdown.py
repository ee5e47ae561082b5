"""`server.run` in a real process: SIGTERM / SIGINT stop it gracefully and it exits 0."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[2]

# A service whose one method takes a second, so a signal can arrive while it is in flight.
SERVER_SCRIPT = """
import asyncio
import grpc
from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import ServiceRegistration, run

async def slow(request, context):
    print("slow-started", flush=True)
    await asyncio.sleep(1.0)
    return b"done"

async def build():
    handler = grpc.method_handlers_generic_handler(
        "tunix_rt.test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(slow)}
    )
    add = lambda server: server.add_generic_rpc_handlers([handler])
    return [ServiceRegistration("tunix_rt.test.Slow", add)]

async def on_shutdown():
    print("on-shutdown", flush=True)

run(ServerConfig(port=0, grace_seconds=5.0, log_format="json"), "slow", build, on_shutdown)
print("exited", flush=True)
"""


class ServerProcess:
    """The script above in a subprocess, its stdout and stderr lines readable with a timeout."""

    def __init__(self) -> None:
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "clients"), str(ROOT / "services")])
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        self.stderr_seen: list[str] = []
        for pipe, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(pipe, lines), daemon=True).start()

    @staticmethod
    def _pump(pipe: IO[str] | None, lines: queue.Queue[str]) -> None:
        assert pipe is not None
        for line in pipe:
            lines.put(line.rstrip("\n"))

    def wait_for_log(self, msg: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first JSON log line on stderr whose msg is `msg`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.stderr.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.stderr.empty():
                    break
                continue
            self.stderr_seen.append(line)
            if line.startswith("{"):
                entry: dict[str, Any] = json.loads(line)
                if entry["msg"] == msg:
                    return entry
        raise AssertionError(f"no {msg!r} log line; stderr so far: {self.stderr_seen}")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Skip stdout lines until one equals `text`; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        seen = []
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.stdout.get(timeout=min(remaining, 0.1))
            except queue.Empty:
                continue
            if line == text:
                return
            seen.append(line)
        raise AssertionError(f"no {text!r} on stdout; saw {seen}")


@pytest.fixture
def server_process() -> Iterator[ServerProcess]:
    server = ServerProcess()
    yield server
    if server.process.poll() is None:
        server.process.kill()
    server.process.wait(timeout=10)
    for pipe in (server.process.stdout, server.process.stderr):
        if pipe is not None:
            pipe.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_idle_server_promptly(server_process: ServerProcess, signum: int) -> None:
    serving = server_process.wait_for_log("serving")
    assert serving["service"] == "slow"
    started = time.monotonic()
    server_process.process.send_signal(signum)
    assert server_process.process.wait(timeout=15) == 0
    assert time.monotonic() - started < 5  # nothing in flight: no need to use the 5 s grace
    server_process.wait_for_log("stopped")
    server_process.wait_for_output("on-shutdown", timeout=5)
    server_process.wait_for_output("exited", timeout=5)


def test_in_flight_call_finishes_during_grace(server_process: ServerProcess) -> None:
    serving = server_process.wait_for_log("serving")
    with grpc.insecure_channel(serving["address"]) as channel:
        call = channel.unary_unary("/tunix_rt.test.Slow/Call").future(b"", timeout=30)
        server_process.wait_for_output("slow-started")
        server_process.process.send_signal(signal.SIGTERM)
        assert call.result(timeout=30) == b"done"
    assert server_process.process.wait(timeout=15) == 0
    server_process.wait_for_output("on-shutdown")
