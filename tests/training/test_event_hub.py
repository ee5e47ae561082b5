"""Sequenced fan-out of a job's run events: numbering, history then live with no gap or duplicate,
many subscribers, falling behind and resuming, non-blocking emission, batched, retried
flushing to the registry, and a final event that readers get only once everything is stored.

The registry is the hub's injected sink and history callback; here it is a list-backed fake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from tunix_rt.training import event_hub
from tunix_rt.training.event_hub import FellBehind, JobEvents
from tunix_rt.v1 import run_pb2

TIMEOUT = 5.0  # seconds; every wait is bounded so a regression fails instead of hanging


@dataclass
class FakeRegistry:
    """The run's stored history: AppendRunEvents (idempotent per sequence) and ListRunEvents."""

    stored: list[run_pb2.RunEvent] = field(default_factory=list)
    failures: int = 0  # the next this many appends raise, as if the registry were down
    batches: list[list[int]] = field(default_factory=list)
    failed_appends: int = 0
    history_reads: list[tuple[int, int]] = field(default_factory=list)
    read_delay: float = 0.0  # seconds per event read back
    gate: asyncio.Event | None = None  # appends wait until it is set: a slow registry

    async def append(self, batch: Sequence[run_pb2.RunEvent]) -> None:
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            self.failed_appends += 1
            raise ConnectionError("registry unavailable")
        self.batches.append([e.sequence for e in batch])
        have = {e.sequence for e in self.stored}
        for event in batch:
            if event.sequence not in have:
                copy = run_pb2.RunEvent()
                copy.CopyFrom(event)
                self.stored.append(copy)

    async def history(self, first: int, last: int) -> AsyncIterator[run_pb2.RunEvent]:
        self.history_reads.append((first, last))
        for event in sorted(self.stored, key=lambda e: e.sequence):
            if first <= event.sequence <= last:
                await asyncio.sleep(self.read_delay)  # a real read yields between messages
                yield event

    def sequences(self) -> list[int]:
        return sorted(e.sequence for e in self.stored)


def metric(step: int) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(
        step=step, metrics=run_pb2.MetricValues(values={"loss": 1.0 / (step + 1)})
    )


def stored_history(count: int) -> list[run_pb2.RunEvent]:
    """Events 1..count as an earlier life of the run stored them (step == sequence)."""
    events = []
    for seq in range(1, count + 1):
        event = metric(seq)
        event.sequence = seq
        events.append(event)
    return events


async def collect(hub: JobEvents, from_sequence: int) -> list[run_pb2.RunEvent | FellBehind]:
    return [item async for item in hub.stream(from_sequence)]


def sequences(items: Sequence[run_pb2.RunEvent | FellBehind]) -> list[int]:
    return [item.sequence for item in items if isinstance(item, run_pb2.RunEvent)]


def events_only(items: Sequence[run_pb2.RunEvent | FellBehind]) -> list[run_pb2.RunEvent]:
    assert not any(isinstance(item, FellBehind) for item in items), items
    return [item for item in items if isinstance(item, run_pb2.RunEvent)]


async def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), TIMEOUT * 4))


@pytest.fixture
def slow_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """No background flush during the test: only close() or flush() reach the registry."""
    monkeypatch.setattr(event_hub, "FLUSH_INTERVAL", 3600.0)


@pytest.fixture
def fast_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_hub, "FLUSH_INTERVAL", 0.001)


@pytest.mark.usefixtures("slow_flush")
def test_sequences_continue_from_the_last_stored_event() -> None:
    async def body() -> None:
        registry = FakeRegistry(stored=stored_history(7))
        hub = JobEvents(7, registry.append, registry.history)
        first = metric(8)
        assert hub.emit(first) == 8
        assert first.sequence == 8
        assert hub.emit(metric(9)) == 9
        assert hub.last_sequence == 9
        await hub.close()
        assert hub.closed
        assert registry.sequences() == list(range(1, 10))

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_a_subscriber_from_one_gets_the_stored_history_then_live_events() -> None:
    async def body() -> None:
        registry = FakeRegistry(stored=stored_history(5))
        hub = JobEvents(5, registry.append, registry.history)
        hub.emit(metric(6))
        hub.emit(metric(7))
        reader = asyncio.create_task(collect(hub, 1))
        for step in range(8, 21):
            await asyncio.sleep(0)
            hub.emit(metric(step))
        await hub.close()
        received = events_only(await reader)
        assert [e.sequence for e in received] == list(range(1, 21))
        assert [e.step for e in received] == list(range(1, 21))
        assert received[0].metrics.values["loss"] == pytest.approx(0.5)
        assert registry.history_reads  # what precedes the hub's first event is stored history
        assert registry.sequences() == list(range(1, 21))

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_a_subscriber_from_the_future_gets_events_from_that_sequence_on() -> None:
    async def body() -> None:
        registry = FakeRegistry()
        hub = JobEvents(0, registry.append, registry.history)
        hub.emit(metric(1))
        reader = asyncio.create_task(collect(hub, 5))
        for step in range(2, 9):
            await asyncio.sleep(0)
            hub.emit(metric(step))
        await hub.close()
        assert sequences(await reader) == [5, 6, 7, 8]

    run(body)


def test_twenty_subscribers_joining_at_different_times_see_identical_gap_free_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tiny window forces late joiners through the registry for what has slid out of memory.
    monkeypatch.setattr(event_hub, "WINDOW", 5)
    monkeypatch.setattr(event_hub, "FLUSH_INTERVAL", 0.001)
    stored, total = 10, 400

    async def body() -> None:
        registry = FakeRegistry(stored=stored_history(stored))
        hub = JobEvents(stored, registry.append, registry.history)
        readers: list[tuple[int, asyncio.Task[list[run_pb2.RunEvent | FellBehind]]]] = []

        def join(from_sequence: int) -> None:
            readers.append((from_sequence, asyncio.create_task(collect(hub, from_sequence))))

        for step in range(stored + 1, total + 1):
            hub.emit(metric(step))
            if step % 80 == 0:
                latest = hub.last_sequence
                join(1)  # everything: stored history, flushed events, window, live
                join(latest - 30)  # in the past, beyond the in-memory window
                join(latest - 2)  # recent: from the window
                join(latest + 1)  # live only
            if step % 10 == 0:
                await asyncio.sleep(0.002)  # let the flusher run so the window slides
            else:
                await asyncio.sleep(0)
        assert len(readers) == 20
        await hub.close()

        expected = {e.sequence: e for e in registry.stored}
        assert sorted(expected) == list(range(1, total + 1))
        for from_sequence, task in readers:
            received = events_only(await task)
            assert [e.sequence for e in received] == list(range(from_sequence, total + 1))
            assert all(e == expected[e.sequence] for e in received)
        # Late joiners did read events emitted by this hub back from the registry.
        assert any(last > stored for _, last in registry.history_reads)

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_the_window_sliding_during_a_slow_history_read_leaves_no_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_hub, "WINDOW", 5)

    async def body() -> None:
        registry = FakeRegistry(stored=stored_history(10), read_delay=0.001)
        hub = JobEvents(10, registry.append, registry.history)
        for step in range(11, 21):
            hub.emit(metric(step))
        await hub.flush()
        reader = asyncio.create_task(collect(hub, 1))
        await asyncio.sleep(0.003)  # the reader is partway through reading 1..10 back
        assert registry.history_reads == [(1, 10)]
        for step in range(21, 41):  # 11..20 are flushed, so these push them out of memory
            hub.emit(metric(step))
        await hub.close()
        assert sequences(events_only(await reader)) == list(range(1, 41))

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_close_ends_every_stream_after_the_last_event_and_flushes_everything() -> None:
    async def body() -> None:
        registry = FakeRegistry()
        hub = JobEvents(0, registry.append, registry.history)
        early = asyncio.create_task(collect(hub, 1))
        await asyncio.sleep(0)
        for step in range(1, 31):
            hub.emit(metric(step))
        late = asyncio.create_task(collect(hub, 20))
        await asyncio.sleep(0)
        assert registry.stored == []  # nothing flushed yet
        await hub.close()
        assert sequences(events_only(await early)) == list(range(1, 31))
        assert sequences(events_only(await late)) == list(range(20, 31))
        assert registry.sequences() == list(range(1, 31))

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_a_stream_opened_after_close_replays_and_ends() -> None:
    async def body() -> None:
        registry = FakeRegistry(stored=stored_history(3))
        hub = JobEvents(3, registry.append, registry.history)
        for step in range(4, 9):
            hub.emit(metric(step))
        await hub.close()
        assert sequences(await collect(hub, 1)) == list(range(1, 9))
        assert sequences(await collect(hub, 6)) == [6, 7, 8]
        assert await collect(hub, 9) == []

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_a_stuck_subscriber_is_told_it_fell_behind_and_resumes_without_a_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_hub, "SUBSCRIBER_BUFFER", 10)

    async def body() -> None:
        registry = FakeRegistry()
        hub = JobEvents(0, registry.append, registry.history)
        hub.emit(metric(1))
        stuck = hub.stream(1)
        first = await anext(stuck)
        assert isinstance(first, run_pb2.RunEvent)
        assert first.sequence == 1
        for step in range(2, 31):  # the reader is not reading meanwhile
            hub.emit(metric(step))

        rest = [item async for item in stuck]
        assert sequences(rest) == list(range(2, 12))  # what its buffer held
        notice = rest[-1]
        assert isinstance(notice, FellBehind)
        assert notice.last_delivered == 11
        assert notice.latest == 30

        resumed = asyncio.create_task(collect(hub, notice.last_delivered + 1))
        await asyncio.sleep(0)
        hub.emit(metric(31))
        await hub.close()
        assert sequences(events_only(await resumed)) == list(range(12, 32))

    run(body)


def test_emitting_never_waits_for_a_stuck_subscriber(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_hub, "FLUSH_INTERVAL", 0.01)
    count = 10_000

    async def body() -> None:
        registry = FakeRegistry()
        hub = JobEvents(0, registry.append, registry.history)
        hub.emit(metric(1))
        stuck = hub.stream(1)
        await anext(stuck)  # subscribed, then never reads again
        fast = asyncio.create_task(collect(hub, 1))
        for step in range(2, count + 1):
            hub.emit(metric(step))
            if step % 100 == 0:
                await asyncio.sleep(0)  # the fast reader keeps up
        await hub.close()

        assert sequences(events_only(await fast)) == list(range(1, count + 1))
        tail = [item async for item in stuck]
        notice = tail[-1]
        assert isinstance(notice, FellBehind)
        # The stuck reader held at most a buffer's worth: memory stayed bounded.
        assert sequences(tail) == list(range(2, 2 + event_hub.SUBSCRIBER_BUFFER))
        assert notice.last_delivered == 1 + event_hub.SUBSCRIBER_BUFFER
        assert registry.sequences() == list(range(1, count + 1))

    run(body)


def test_metrics_reach_the_registry_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_hub, "FLUSH_INTERVAL", 0.001)
    monkeypatch.setattr(event_hub, "FLUSH_BATCH", 7)

    async def body() -> None:
        registry = FakeRegistry()
        hub = JobEvents(0, registry.append, registry.history)
        for step in range(1, 51):
            hub.emit(metric(step))
        await wait_until(lambda: len(registry.stored) == 50)
        assert [len(b) for b in registry.batches] == [7] * 7 + [1]
        assert [s for b in registry.batches for s in b] == list(range(1, 51))
        await hub.close()

    run(body)


@pytest.mark.usefixtures("fast_flush")
def test_sink_failures_are_retried_and_nothing_is_lost() -> None:
    async def body() -> None:
        registry = FakeRegistry(failures=3)
        hub = JobEvents(0, registry.append, registry.history)
        for step in range(1, 21):
            hub.emit(metric(step))
        await wait_until(lambda: len(registry.stored) == 20)
        assert registry.failed_appends == 3
        for step in range(21, 26):
            hub.emit(metric(step))
        registry.failures = 2
        await wait_until(lambda: len(registry.stored) == 25)
        await hub.close()
        assert registry.sequences() == list(range(1, 26))
        assert [e.step for e in sorted(registry.stored, key=lambda e: e.sequence)] == list(
            range(1, 26)
        )

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_close_with_the_registry_down_raises_and_keeps_the_events_for_a_later_flush() -> None:
    async def body() -> None:
        registry = FakeRegistry(failures=1)
        hub = JobEvents(0, registry.append, registry.history)
        for step in range(1, 6):
            hub.emit(metric(step))
        with pytest.raises(ConnectionError):
            await hub.close()
        assert registry.stored == []
        await hub.flush()
        assert registry.sequences() == [1, 2, 3, 4, 5]

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_overlapping_flushes_send_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_hub, "FLUSH_BATCH", 3)

    async def body() -> None:
        registry = FakeRegistry()
        hub = JobEvents(0, registry.append, registry.history)
        for step in range(1, 11):
            hub.emit(metric(step))

        async def keep_emitting() -> None:
            for step in range(11, 41):
                await asyncio.sleep(0)
                hub.emit(metric(step))

        await asyncio.gather(hub.flush(), hub.flush(), keep_emitting())
        await hub.close()
        assert registry.sequences() == list(range(1, 41))

    run(body)


def final_state() -> run_pb2.RunEvent:
    return run_pb2.RunEvent(
        state_change=run_pb2.StateChange(
            from_state=run_pb2.RUN_STATE_RUNNING, to_state=run_pb2.RUN_STATE_SUCCEEDED
        )
    )


@pytest.mark.usefixtures("slow_flush")
def test_the_final_event_reaches_readers_only_once_it_and_all_before_it_are_stored() -> None:
    async def body() -> None:
        gate = asyncio.Event()
        registry = FakeRegistry(stored=stored_history(3), gate=gate)
        hub = JobEvents(3, registry.append, registry.history)
        # What each reader had stored in the registry when it received each event.
        seen: dict[str, list[tuple[int, list[int]]]] = {"early": [], "late": []}

        async def read(name: str, from_sequence: int) -> None:
            async for item in hub.stream(from_sequence):
                assert isinstance(item, run_pb2.RunEvent)
                seen[name].append((item.sequence, registry.sequences()))

        early = asyncio.create_task(read("early", 1))
        await asyncio.sleep(0)
        for step in range(4, 11):
            hub.emit(metric(step))
        await wait_until(lambda: len(seen["early"]) == 10)  # live events before storing: fine
        assert registry.sequences() == [1, 2, 3]
        closing = asyncio.create_task(hub.close(final_state()))
        await asyncio.sleep(0.01)  # the registry is slow: close waits on it
        late = asyncio.create_task(read("late", 5))  # joins while the final event is held
        await wait_until(lambda: len(seen["late"]) == 6)
        assert hub.last_sequence == 11
        assert hub.last_published == 10
        assert len(seen["early"]) == 10
        assert not closing.done()
        gate.set()
        await closing
        await asyncio.gather(early, late)
        for name, first in (("early", 1), ("late", 5)):
            assert [seq for seq, _ in seen[name]] == list(range(first, 12))
            final_sequence, stored = seen[name][-1]
            assert final_sequence == 11
            assert stored == list(range(1, 12)), name
        assert registry.sequences() == list(range(1, 12))
        assert hub.last_published == 11
        assert sequences(await collect(hub, 10)) == [10, 11]  # a stream after the end

    run(body)


@pytest.mark.usefixtures("slow_flush")
def test_a_final_event_the_registry_cannot_store_still_ends_every_stream() -> None:
    async def body() -> None:
        registry = FakeRegistry(failures=1)
        hub = JobEvents(0, registry.append, registry.history)
        reader = asyncio.create_task(collect(hub, 1))
        await asyncio.sleep(0)
        hub.emit(metric(1))
        with pytest.raises(ConnectionError):
            await hub.close(final_state())
        assert sequences(events_only(await reader)) == [1, 2]
        assert registry.stored == []
        await hub.close()  # closing again stores what is left
        assert registry.sequences() == [1, 2]

    run(body)


def test_the_flush_interval_is_the_hubs_own() -> None:
    async def body() -> None:
        registry = FakeRegistry()
        hub = JobEvents(0, registry.append, registry.history, flush_interval=0.001)
        hub.emit(metric(1))
        await wait_until(lambda: registry.sequences() == [1])
        slow = JobEvents(0, registry.append, registry.history, flush_interval=3600.0)
        slow.emit(metric(1))
        await asyncio.sleep(0.05)
        assert len(registry.batches) == 1  # only the fast hub's
        await asyncio.gather(hub.close(), slow.close())

    run(body)
