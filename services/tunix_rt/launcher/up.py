"""`tunix-rt up`: the registry, training and inference services in one process on the embedded
defaults (SQLite and the local blob store under `data_dir/registry`, CPU training, a local weight
cache), for local use. Inference starts before training, which evaluates jobs on completion through
it. Ctrl-C or SIGTERM stops all three in reverse order, registry last, so no service loses its
registry while it shuts down. With a dashboard port it also runs `tunix-rt dashboard` against
the three, in a child process (see `_start_dashboard`), stopped first.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tunix_rt.common.config import from_env
from tunix_rt.common.logging_setup import configure_logging
from tunix_rt.inference.server import DEFAULT_WARMUP_BATCH, parse_size, start_inference
from tunix_rt.registry.server import start_registry
from tunix_rt.training.server import start_training

__all__ = ["parse_size", "run_all"]


# Seconds the dashboard gets to close its connections after SIGTERM before it is killed.
DASHBOARD_STOP_S = 10.0


class _Service(Protocol):
    async def stop(self, grace: float | None = None) -> None: ...


class _Dashboard:
    """`tunix-rt dashboard` in a child process. The dashboard is a client (tunix_rt.dashboard)
    and service code imports no client code (pyproject's import contracts), so the launcher runs
    it as a command rather than importing it; it inherits the token and TLS CA from the
    environment, as every service here does."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def stop(self, grace: float | None = None) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), DASHBOARD_STOP_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


async def _start_dashboard(addresses: dict[str, str], host: str, port: int) -> _Dashboard:
    arguments = [f"--{service}={address}" for service, address in addresses.items()]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tunix_rt.client.cli",
        *arguments,
        "dashboard",
        f"--host={host}",
        f"--port={port}",
    )
    return _Dashboard(process)


async def run_all(
    *,
    data_dir: Path,
    host: str,
    ports: tuple[int, int, int],
    cpu_slots: int,
    memory_budget_bytes: int,
    announce: Callable[[str], None],
    dashboard_port: int = 0,
) -> None:
    """Serves until SIGINT or SIGTERM; `announce` receives one line per started service.
    `dashboard_port` (0: none) also serves the web dashboard there.

    Each service reads its own config from the environment as `serve` does (token, TLS, metrics
    port, logging), so `up` serves and dials with TLS and a token when they are set."""
    registry_port, training_port, inference_port = ports
    configs = {
        name: from_env(name, host=host, port=port)
        for name, port in (
            ("registry", registry_port),
            ("training", training_port),
            ("inference", inference_port),
        )
    }
    configure_logging(configs["inference"].log_format, configs["inference"].log_level)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    started: list[_Service] = []
    try:
        registry = await start_registry(data_dir=data_dir / "registry", config=configs["registry"])
        started.append(registry)
        announce(f"registry   {registry.address}")
        inference = await start_inference(
            registry_address=registry.address,
            data_dir=data_dir / "inference",
            memory_budget_bytes=memory_budget_bytes,
            warmup_batch=DEFAULT_WARMUP_BATCH,
            config=configs["inference"],
        )
        started.append(inference)
        announce(f"inference  {inference.address}")
        training = await start_training(
            registry_address=registry.address,
            data_dir=data_dir / "training",
            cpu_slots=cpu_slots,
            config=configs["training"],
            # Jobs that ask to be evaluated on completion use this inference service.
            inference_address=inference.address,
        )
        started.append(training)
        announce(f"training   {training.address}")
        if dashboard_port:
            addresses = {
                "registry": registry.address,
                "training": training.address,
                "inference": inference.address,
            }
            started.append(await _start_dashboard(addresses, host, dashboard_port))
            announce(f"dashboard  http://{host}:{dashboard_port}")
        announce("serving; Ctrl-C stops them all")
        await stop.wait()
    finally:
        for service in reversed(started):
            await service.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        announce("stopped")
