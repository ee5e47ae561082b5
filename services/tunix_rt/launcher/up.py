"""`tunix-rt up`: the registry, training and inference services in one process on the embedded
defaults (SQLite and the local blob store under `data_dir/registry`, CPU training, a local weight
cache), for local use. Inference starts before training, which evaluates jobs on completion through
it. Ctrl-C or SIGTERM stops all three in reverse order, registry last, so no service loses its
registry while it shuts down.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tunix_rt.common.config import from_env
from tunix_rt.common.logging_setup import configure_logging
from tunix_rt.inference.server import DEFAULT_WARMUP_BATCH, parse_size, start_inference
from tunix_rt.registry.server import start_registry
from tunix_rt.training.server import start_training

__all__ = ["parse_size", "run_all"]


class _Service(Protocol):
    async def stop(self, grace: float | None = None) -> None: ...


async def run_all(
    *,
    data_dir: Path,
    host: str,
    ports: tuple[int, int, int],
    cpu_slots: int,
    memory_budget_bytes: int,
    announce: Callable[[str], None],
) -> None:
    """Serves until SIGINT or SIGTERM; `announce` receives one line per started service.

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
        announce("serving; Ctrl-C stops all three")
        await stop.wait()
    finally:
        for service in reversed(started):
            await service.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        announce("stopped")
