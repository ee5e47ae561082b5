"""A blocking generator consumed from the event loop: it runs on a thread of its own (never a
slot of the loop's small default executor, so many can block at once) and hands its items over
through an asyncio queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any


async def iterate_in_thread(
    make: Callable[[], Iterator[Any]],
    is_active: Callable[[], bool],
    stop: Callable[[], None],
    name: str,
) -> AsyncGenerator[Any, None]:
    """Yields what `make()` produces, on a thread named `name`; its exception is raised here.
    The thread stops pulling items once `is_active()` is False; leaving the iteration early (or
    the loop closing) calls `stop()`, which must make the generator end soon."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop has closed (shutdown): nobody is listening
            stop()

    def pump() -> None:
        try:
            for item in make():
                put("item", item)
                if not is_active():
                    break
        except BaseException as err:  # re-raised on the loop, where the interceptor maps it
            put("error", err)
        put("end", None)

    threading.Thread(target=pump, name=name, daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop()
