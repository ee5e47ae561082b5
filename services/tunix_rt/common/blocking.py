"""A service's own threads for its blocking work (the database, the blob store, calls to
other services), instead of asyncio's default thread pool.

`tunix-rt up` runs the registry, training and inference in one process and one event loop, so
they would all share the loop's default pool (`asyncio.to_thread`; min(32, cores + 4) workers,
6 on 2 cores). The inference service's threads block on registry calls; when every one of them
did (16 streams for an alias whose cached answer had expired), the registry's answer waited for
a thread in the same pool, and each call stalled until its 30 s deadline. With a pool per
service, a service's blocking calls can only wait on another service's threads, never on their
own.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingPool:
    """`run(f, *args)`: `asyncio.to_thread` on this pool's threads (context variables, such as
    the request id logs carry, go along as they do with `to_thread`)."""

    def __init__(self, name: str, workers: int | None = None) -> None:
        # asyncio's default size: enough for a service's concurrent calls on a small host.
        size = workers or min(32, (os.cpu_count() or 1) + 4)
        # Idle workers end when the pool is garbage-collected with its server.
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=name)

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
        return await loop.run_in_executor(self._pool, call)
