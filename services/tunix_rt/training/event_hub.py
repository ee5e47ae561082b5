"""Exact, sequenced event streams of running jobs: one writer, any number of readers.

Each event of a job gets the next sequence number (continuing its registry run's history). Events
go three ways: into a bounded in-memory window, to every live subscriber, and in batches to the
registry (AppendRunEvents). A subscriber reads older history from the registry, then the window,
then live events, and never sees a gap or a duplicate. A subscriber that falls too far behind is
cut off with a notice carrying its last delivered sequence, so it can call again from there;
emitting never waits for a reader, so a stuck reader never slows training.

The stream's last event (a job's final state change, given to `close`) is the one exception to
"readers first, registry later": it reaches readers only once it and every event before it are
stored, so a reader that receives it finds the whole history in ListRunEvents. The job has
stopped training by then, so waiting on the registry costs training nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from tunix_rt.v1 import run_pb2

log = logging.getLogger(__name__)

# Sink: appends a batch to the run's history (AppendRunEvents); History: reads stored events
# with sequences in [first, last] in order (ListRunEvents).
Sink = Callable[[Sequence[run_pb2.RunEvent]], Awaitable[None]]
History = Callable[[int, int], AsyncIterator[run_pb2.RunEvent]]

WINDOW = 10_000  # events kept in memory per job
SUBSCRIBER_BUFFER = 5_000  # events a subscriber may lag before it is cut off
FLUSH_INTERVAL = 0.25  # seconds between registry batches
FLUSH_BATCH = 500  # events per AppendRunEvents call


@dataclass
class FellBehind:
    """The end of a stream whose reader was too slow."""

    last_delivered: int
    latest: int


@dataclass(eq=False)  # identity semantics: subscribers live in a set
class _Subscriber:
    buffer: collections.deque[run_pb2.RunEvent] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    fell_behind: bool = False
    ended: bool = False


class JobEvents:
    """The event stream of one job on this training service."""

    def __init__(
        self,
        last_stored: int,
        sink: Sink,
        history: History,
        flush_interval: float | None = None,
    ) -> None:
        self.last_sequence = last_stored  # the latest event emitted
        # The latest event readers may see: behind `last_sequence` only while close() holds the
        # final event (and any emitted after it) back until it is stored.
        self._published = last_stored
        self._held: list[run_pb2.RunEvent] | None = None
        self._flush_interval = FLUSH_INTERVAL if flush_interval is None else flush_interval
        self._window: collections.deque[run_pb2.RunEvent] = collections.deque()
        self._subscribers: set[_Subscriber] = set()
        self._pending: list[run_pb2.RunEvent] = []
        self._sink = sink
        self._history = history
        self._closing = False
        self._closed = False
        self._ended = asyncio.Event()  # set when the first close() has returned or raised
        # One flush at a time: two overlapping flushes would both send the head of `_pending` and
        # then both drop a batch from it, dropping events that were never sent.
        self._flush_lock = asyncio.Lock()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_published(self) -> int:
        """The latest sequence readers can get now."""
        return self._published

    def emit(self, event: run_pb2.RunEvent) -> int:
        """Gives `event` the next sequence, records and fans it out; never blocks."""
        self.last_sequence += 1
        event.sequence = self.last_sequence
        self._window.append(event)
        self._pending.append(event)
        # The window keeps every unflushed event: older ones are safe in the registry.
        while len(self._window) > WINDOW and self._window[0].sequence < self._first_pending():
            self._window.popleft()
        if self._held is not None:
            self._held.append(event)
        else:
            self._publish(event)
        return event.sequence

    def _publish(self, event: run_pb2.RunEvent) -> None:
        self._published = event.sequence
        for sub in self._subscribers:
            if sub.fell_behind:
                continue
            if len(sub.buffer) >= SUBSCRIBER_BUFFER:
                sub.fell_behind = True
            else:
                sub.buffer.append(event)
            sub.wake.set()

    def _first_pending(self) -> int:
        return self._pending[0].sequence if self._pending else self.last_sequence + 1

    async def close(self, final: run_pb2.RunEvent | None = None) -> None:
        """Ends every stream after the events emitted so far and `final`, and flushes them all to
        the registry. `final` (a job's terminal state change) reaches readers only after the
        registry has stored it and everything before it; should the registry fail, readers get
        it anyway, the events stay for a later flush or close, and the error is raised.

        Closing again only flushes what is still unstored (after the first close has ended)."""
        if self._closing:
            if final is not None:
                self.emit(final)
            await self._ended.wait()
            await self._flush_all()
            return
        self._closing = True
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        if final is not None:
            self._held = []
            self.emit(final)
        try:
            await self._flush_all()
        finally:
            held, self._held = self._held or [], None
            for event in held:
                self._publish(event)
            self._closed = True
            for sub in self._subscribers:
                sub.ended = True
                sub.wake.set()
            self._ended.set()

    async def wait_closed(self) -> None:
        """Waits until close() has stored the final event (or failed to)."""
        await self._ended.wait()

    async def flush(self) -> None:
        await self._flush_all()

    async def _flush_all(self) -> None:
        async with self._flush_lock:
            while self._pending:
                batch = self._pending[:FLUSH_BATCH]
                await self._sink(batch)
                del self._pending[: len(batch)]

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self._flush_all()
            except Exception:  # the registry may be briefly down: keep the events, retry
                log.warning("could not append run events; will retry", exc_info=True)

    async def stream(self, from_sequence: int) -> AsyncIterator[run_pb2.RunEvent | FellBehind]:
        """Events from `from_sequence` on: history, then live, until the job's stream closes."""
        next_seq = max(1, from_sequence)
        sub = _Subscriber(ended=self._closed)  # after close(): replay what exists, then end
        # Subscribe before reading history, so nothing emitted meanwhile is missed; what arrives
        # twice is dropped by sequence.
        self._subscribers.add(sub)
        try:
            while True:
                # Catch up to just before the oldest buffered live event (or to the latest).
                target = sub.buffer[0].sequence - 1 if sub.buffer else self._published
                if next_seq <= target:
                    async for event in self._replay(next_seq, target):
                        if event.sequence == next_seq:
                            yield event
                            next_seq += 1
                    if next_seq <= target:
                        raise RuntimeError(f"event history lacks sequence {next_seq}")
                while sub.buffer and sub.buffer[0].sequence <= next_seq:
                    event = sub.buffer.popleft()
                    if event.sequence == next_seq:
                        yield event
                        next_seq += 1
                if sub.buffer:
                    continue  # a gap before the buffer: replay it first
                if sub.fell_behind:
                    yield FellBehind(next_seq - 1, self._published)
                    return
                if sub.ended and next_seq > self._published:
                    return
                if not sub.ended:
                    sub.wake.clear()
                    await sub.wake.wait()
        finally:
            self._subscribers.discard(sub)

    async def _replay(self, first: int, last: int) -> AsyncIterator[run_pb2.RunEvent]:
        """Stored events in [first, last], in order, each once: older ones from the registry, the
        rest from memory. Stops early only where the registry lacks an event."""
        while first <= last:
            window_start = self._window[0].sequence if self._window else self.last_sequence + 1
            if first >= window_start:
                for event in list(self._window):
                    if first <= event.sequence <= last:
                        yield event
                return
            # Everything before the window has been flushed, so the registry holds it. The window
            # may slide on while the registry is read (events are emitted and flushed meanwhile),
            # so look again afterwards rather than trust the window start seen before.
            before = first
            async for event in self._history(first, min(last, window_start - 1)):
                if event.sequence == first:
                    yield event
                    first += 1
            if first == before:
                return
