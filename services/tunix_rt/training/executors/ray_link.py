"""The service's end of one Ray driver process (ray_driver.py): starting it, requests and their
replies, and the attempts it runs, each seen by the job manager as an executors.base.Attempt.

When the process ends (the cluster went away, or the driver died) every request in flight fails
UNAVAILABLE and every attempt on it ends EXIT_NODE_LOST with a CLUSTER_LOST interruption, so the
job manager requeues its job to resume from its latest checkpoint once the cluster is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from tunix_rt.common.errors import FailedPrecondition, Unavailable
from tunix_rt.training import peak_flops
from tunix_rt.training.executors.base import EXIT_NODE_LOST
from tunix_rt.training.executors.ray_cluster import Node

log = logging.getLogger(__name__)

# How long a driver may take to import Ray and connect (a cluster that does not answer makes
# ray.init give up after ~40 s by itself).
CONNECT_SECONDS = 90.0
CLOSE_SECONDS = 30.0  # how long a closing driver may take to release its attempts
LINE_LIMIT = 16 * 1024 * 1024  # the longest protocol line read from the driver


class LinkedAttempt:
    """An attempt whose ranks the driver process runs (executors.base.Attempt)."""

    def __init__(self, key: str, link: DriverLink | None, hosts: list[str]) -> None:
        self.key, self.link, self.hosts = key, link, hosts
        self.pids: list[int] = []
        self.returncode: int | None = None
        self.interruption = ""  # why it ended early through no fault of its own; "" otherwise
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._ended = asyncio.Event()

    @property
    def pid(self) -> int:
        return self.pids[0] if self.pids else 0

    def deliver(self, event: dict[str, Any]) -> None:
        self._events.put_nowait(event)

    def end(self, code: int, lost_nodes: list[str], interruption: str = "") -> None:
        if self._ended.is_set():
            return
        self.returncode = code
        self.interruption = interruption or (
            f"NODE_LOST: {', '.join(lost_nodes)} left the cluster" if lost_nodes else ""
        )
        self._events.put_nowait(None)
        self._ended.set()

    async def reports(self) -> AsyncIterator[dict[str, Any]]:
        while (event := await self._events.get()) is not None:
            yield event

    async def wait(self) -> int:
        await self._ended.wait()
        assert self.returncode is not None
        return self.returncode

    def ask_to_stop(self) -> None:
        if self.link is not None:
            self.link.send("ask_to_stop", key=self.key)

    def stop(self, grace_seconds: float) -> None:
        if self.link is not None:
            self.link.send("stop", key=self.key, grace=grace_seconds)

    async def close(self) -> None:
        """Kills every rank and releases the placement group (nothing to do when the driver is
        gone: its actors and placement groups went with it)."""
        if self.link is not None and not self.link.closed:
            with contextlib.suppress(Unavailable):
                await self.link.call("close", key=self.key)


class DriverLink:
    """One driver process: requests, replies, and the attempts it runs."""

    def __init__(
        self, address: str, process: asyncio.subprocess.Process, on_lost_node: Callable[[str], None]
    ) -> None:
        self.address = address
        self.process = process
        self.on_lost_node = on_lost_node
        self.closed = False
        self.ended = asyncio.Event()  # the process ended: the link is gone
        self.attempts: dict[str, LinkedAttempt] = {}
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, address: str, on_lost_node: Callable[[str], None]
    ) -> tuple[DriverLink, list[Node]]:
        """Starts a driver for the cluster at `address`; the link and the cluster's alive nodes
        once it connected. Raises ConnectionError when it could not."""
        # The CPU probe a CPU rank's environment carries (peak_flops), taken once in this
        # process rather than by every driver: on a 2-core host the probe's ~2.4 s of CPU on
        # each reconnect competed with the cluster starting up again.
        probe = await asyncio.to_thread(peak_flops.probe_environment)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tunix_rt.training.executors.ray_driver",
            address,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **probe, "TUNIX_RT_PARENT_PID": str(os.getpid())},
            limit=LINE_LIMIT,
        )
        assert process.stdout is not None
        try:
            first = await asyncio.wait_for(process.stdout.readline(), CONNECT_SECONDS)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        if not first:
            code = await process.wait()
            raise ConnectionError(f"the Ray driver for {address} exited {code} before connecting")
        nodes = [Node(**n) for n in json.loads(first)["ready"]]
        link = cls(address, process, on_lost_node)
        link._reader = asyncio.get_running_loop().create_task(link._read())
        return link, nodes

    def attempt(self, key: str, hosts: list[str]) -> LinkedAttempt:
        """A new attempt on this driver, routed its events before it is started."""
        attempt = LinkedAttempt(key, self, hosts)
        self.attempts[key] = attempt
        return attempt

    def send(self, op: str, **args: Any) -> int:
        """Sends a request without waiting for its reply; its id (0 when the link is gone)."""
        if self.closed:
            return 0
        request_id = next(self._ids)
        assert self.process.stdin is not None
        line = json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n"
        try:
            self.process.stdin.write(line)
        except (ConnectionError, RuntimeError):  # the process is ending: the reader says so
            return 0
        return request_id

    async def call(self, op: str, seconds: float | None = None, **args: Any) -> Any:
        """A request's result. Raises Unavailable when the link is gone or goes before the
        reply; FailedPrecondition or RuntimeError for what the driver refused; TimeoutError
        past `seconds`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request_id = self.send(op, **args)
        if not request_id:
            raise self._gone()
        self._replies[request_id] = future
        try:
            return await asyncio.wait_for(future, seconds)
        finally:
            self._replies.pop(request_id, None)

    def _gone(self) -> Unavailable:
        return Unavailable(f"the Ray cluster at {self.address} is unreachable")

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                self._route(json.loads(line))
        except Exception:  # a broken line or pipe: the driver is unusable either way
            log.exception("the Ray driver's output could not be read")
            self.process.kill()
        code = await self.process.wait()
        self.closed = True
        log.warning("the Ray driver for %s ended (exit code %s)", self.address, code)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(self._gone())
        why = f"CLUSTER_LOST: the Ray cluster at {self.address} went away"
        for attempt in self.attempts.values():
            attempt.end(EXIT_NODE_LOST, list(attempt.hosts), why)
        self.ended.set()

    def _route(self, message: dict[str, Any]) -> None:
        if "id" in message:
            future = self._replies.get(message["id"])
            if future is None or future.done():
                return
            if "error" in message:
                error = message["error"]
                reason = error.get("reason")
                exc: Exception = (
                    FailedPrecondition(error["message"], reason=reason)
                    if reason
                    else RuntimeError(error["message"])
                )
                future.set_exception(exc)
            else:
                future.set_result(message.get("result"))
        elif "lost_node" in message:
            self.on_lost_node(message["lost_node"])
        elif (attempt := self.attempts.get(message.get("attempt", ""))) is not None:
            if "event" in message:
                attempt.deliver(message["event"])
            else:
                attempt.end(int(message["ended"]), list(message["lost_nodes"]))
                self.attempts.pop(attempt.key, None)

    def kill(self) -> None:
        """Ends a driver that stopped answering; the reader then closes the link."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def close(self) -> None:
        """Closes the driver's stdin (it closes its attempts and exits); kills it past
        CLOSE_SECONDS."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.ended.wait(), CLOSE_SECONDS)
        except TimeoutError:
            self.kill()
            await self.ended.wait()
