"""Keeping an executor's inventory current while the service runs (a Ray cluster's nodes join and
leave; a host's devices are fixed and never watched)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tunix_rt.training.executors.base import Executor

log = logging.getLogger(__name__)


class InventoryWatch:
    """Refreshes `executor`'s inventory every `executor.inventory_interval` seconds once started
    (never for 0); on a change, `on_change` reschedules: queued jobs that fit only with a node
    that joined start. The scheduler's refusals read the executor's `place` as it is now."""

    def __init__(self, executor: Executor, on_change: Callable[[], None]) -> None:
        self.executor = executor
        self.on_change = on_change
        self._task: asyncio.Task[None] | None = None
        # A cluster that comes back brings its nodes: queued and requeued jobs may start.
        executor.subscribe(lambda serving: on_change())

    def start(self) -> None:
        if self.executor.inventory_interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.executor.inventory_interval)
            try:
                changed = await self.executor.refresh()
            except Exception:  # the cluster does not answer now: try again next time
                log.warning("could not refresh the inventory", exc_info=True)
                continue
            if changed:
                log.info("inventory changed: %s", self.executor.place)
                self.on_change()
