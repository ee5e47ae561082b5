"""Continuous batching: one scheduler thread per engine runs the model for every caller.

`generate` calls (from many gRPC threads) queue requests; the thread admits waiting requests into
free rows at each step boundary (a batched prefill), runs one decode step for all active rows,
hands each row's output to its `RequestState`, and releases finished or cancelled rows at once.
The model work itself is a `DecodeCore` (the JAX or torch engine's cache and compiled steps).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tunix_rt.inference.engines.base import Finished, Piece, Sampling, kv_cache_bytes
from tunix_rt.inference.engines.sampling import RequestState
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer

log = logging.getLogger("tunix_rt.inference.engines")

POLL_SECONDS = 0.02  # how often a waiting caller checks `cancelled()`
# Deferred work (idle_step) starts only after this long without a request: a client's next
# request usually follows within milliseconds, and would otherwise wait for a compilation.
IDLE_GRACE_SECONDS = 0.5
MAX_FUSED_STEPS = 16  # greedy steps a core may run per call (fewer host round trips)


class DecodeCore(Protocol):
    """The model side of an engine: rows of a KV-cached batch.

    Rows are small integers below `capacity` chosen by the scheduler. Both calls return, aligned
    with `rows`, the greedy next token of each row and, when `want_logits`, each row's float32
    logits (for host-side sampling)."""

    capacity: int

    def prefill(
        self, rows: list[int], prompts: list[list[int]], want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Starts `rows` (whatever they held before) with `prompts`."""

    def decode(
        self, rows: list[int], tokens: list[int], want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Feeds one token to each of `rows` (the active ones; all others are idle)."""

    def release(self, rows: list[int]) -> None:
        """`rows` are free again."""

    # Optional: `idle_step() -> bool` runs one piece of deferred work (the JAX core's warm-up
    # of rarer shapes) while no request is in flight, and says whether any is left.


Event = Piece | Finished | BaseException


@dataclass
class _Request:
    state: RequestState
    events: queue.Queue[Event] = field(default_factory=queue.Queue)
    cancelled: bool = False
    # A pushed request (`generate_to`): its events go to `deliver` instead of `events`, and the
    # scheduler asks `poll` at every step whether its caller went away.
    deliver: Callable[[Event], None] | None = None
    poll: Callable[[], bool] | None = None

    def gone(self) -> bool:
        return self.cancelled or (self.poll is not None and self.poll())

    def send(self, event: Event) -> None:
        if self.deliver is not None:
            self.deliver(event)
        else:
            self.events.put(event)


@dataclass
class SchedulerStats:
    """What the scheduler did (tests and benchmarks read it)."""

    steps: int = 0
    prefills: int = 0
    max_batch: int = 0
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)


class Scheduler:
    """Runs one engine's requests in batches on its own thread."""

    def __init__(
        self, core: DecodeCore, tokenizer: TextTokenizer, context_length: int, name: str
    ) -> None:
        self.core, self.tokenizer, self.context_length = core, tokenizer, context_length
        self.stats = SchedulerStats()
        self._waiting: collections.deque[_Request] = collections.deque()
        self._active: dict[int, _Request] = {}
        self._next: dict[int, int] = {}  # row -> the token it is fed next
        self._requests: dict[int, _Request] = {}  # row -> request, for merged events
        self._cond = threading.Condition()
        self._closed = False
        self._idle_work = False  # the core has deferred work for idle time (see idle_work_added)
        self._busy_at = 0.0  # time.monotonic() when the last request was worked on
        self._thread = threading.Thread(target=self._run, name=f"engine-{name}", daemon=True)
        self._thread.start()

    def generate(
        self, prompt_ids: list[int], sampling: Sampling, cancelled: Callable[[], bool]
    ) -> Iterator[Piece | Finished]:
        """Queues a request and yields its events as the scheduler produces them."""
        # A generator: the request is queued when the caller starts iterating, as before.
        (request,) = self._submit([prompt_ids], sampling)
        yield from self._stream(request, cancelled)

    def generate_batch(
        self, prompts: list[list[int]], sampling: Sampling, cancelled: Callable[[], bool]
    ) -> list[Finished]:
        """Queues all `prompts` at once, so they are admitted together (one batched prefill,
        then decode steps over all of them: vLLM's offline `LLM.generate(prompts)`), and waits
        for every one of them; the Finished events in the order of `prompts`."""
        requests = self._submit(prompts, sampling)
        results: list[Finished] = []
        try:
            for request in requests:
                for event in self._stream(request, cancelled):
                    if isinstance(event, Finished):
                        results.append(event)
        finally:
            # One request failed (or the caller was interrupted): the rest leave the batch too.
            for request in requests:
                if request.state.finished is None:
                    self._cancel(request)
        return results

    def generate_to(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        cancelled: Callable[[], bool],
        deliver: Callable[[Event], None],
    ) -> None:
        """Queues a request whose events (Pieces, the Finished, or the exception that failed
        it) are handed to `deliver` on the scheduler thread, as they happen: no thread per
        request waits on them (the service puts them straight on its event loop). `deliver`
        must not block; `cancelled()` is asked at every step."""
        self._submit([prompt_ids], sampling, deliver, cancelled)

    def _submit(
        self,
        prompts: list[list[int]],
        sampling: Sampling,
        deliver: Callable[[Event], None] | None = None,
        poll: Callable[[], bool] | None = None,
    ) -> list[_Request]:
        """The requests of `prompts`, queued under one hold of the lock: the scheduler sees all
        of them at its next step boundary (one thread per request would trickle in and start
        decoding the first alone)."""
        requests = [
            _Request(
                RequestState(list(ids), sampling, self.tokenizer, self.context_length),
                deliver=deliver,
                poll=poll,
            )
            for ids in prompts
        ]
        with self._cond:
            if self._closed:
                raise RuntimeError("engine is closed")
            self._waiting.extend(requests)
            self._cond.notify()
        return requests

    def _stream(
        self, request: _Request, cancelled: Callable[[], bool]
    ) -> Iterator[Piece | Finished]:
        try:
            while True:
                try:
                    event = request.events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if not request.cancelled and cancelled():
                        self._cancel(request)
                    continue
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
                if not request.cancelled and cancelled():
                    self._cancel(request)
        finally:
            # The caller stopped iterating (or went away): free the row at the next step.
            if request.state.finished is None:
                self._cancel(request)

    def _cancel(self, request: _Request) -> None:
        with self._cond:
            request.cancelled = True
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    @property
    def idle_work_pending(self) -> bool:
        return self._idle_work

    def idle_work_added(self) -> None:
        """The core queued deferred work: run it, a piece at a time, while nothing is asked."""
        with self._cond:
            self._idle_work = hasattr(self.core, "idle_step")
            self._cond.notify()

    # The scheduler thread.

    def _run(self) -> None:
        while True:
            with self._cond:
                idle = self._wait_for_work()
                if self._closed:
                    self._fail_all(RuntimeError("engine closed"))
                    return
                admit = self._take_admissions()
            try:
                if idle and not admit:
                    self._idle_step()
                    continue
                self._busy_at = time.monotonic()
                self._drop_cancelled()
                if admit:
                    self._prefill(admit)
                if self._active:
                    self._decode()
            except Exception as error:
                self._fail_all(error)

    def _wait_for_work(self) -> bool:
        """Waits (holding `_cond`) for a request, closing, or the idle grace to pass with
        deferred work queued; True in the last case."""
        while not (self._closed or self._waiting or self._active):
            if not self._idle_work:
                self._cond.wait()
                continue
            left = self._busy_at + IDLE_GRACE_SECONDS - time.monotonic()
            if left <= 0:
                return True
            self._cond.wait(left)
        return False

    def _idle_step(self) -> None:
        """One piece of the core's deferred work; a request arriving meanwhile waits for it
        (well under a second: one compilation group), as it would for that compilation."""
        try:
            more = bool(self.core.idle_step())  # type: ignore[attr-defined]
        except Exception:
            log.exception("deferred engine work failed; dropped")
            more = False
        with self._cond:
            self._idle_work = self._idle_work and more

    def _take_admissions(self) -> dict[int, _Request]:
        free = [r for r in range(self.core.capacity) if r not in self._active]
        admit: dict[int, _Request] = {}
        while self._waiting and free:
            request = self._waiting.popleft()
            if request.gone():
                self._emit(request, request.state.cancel())
                continue
            admit[free.pop(0)] = request
        return admit

    def _drop_cancelled(self) -> None:
        gone = [row for row, request in self._active.items() if request.gone()]
        for row in gone:
            request = self._active.pop(row)
            self._next.pop(row, None)
            self._emit(request, request.state.cancel())
        if gone:
            self.core.release(gone)

    def _prefill(self, admit: dict[int, _Request]) -> None:
        rows = list(admit)
        want = any(r.state.sampling.temperature > 0 for r in admit.values())
        # Active before the prefill runs: if it raises, _fail_all must reach these callers too
        # (they have already left the waiting queue).
        self._active.update(admit)
        greedy, logits = self.core.prefill(rows, [admit[r].state.prompt_ids for r in rows], want)
        self.stats.prefills += 1
        self._consume(rows, greedy, logits)

    def _fused_steps(self, rows: list[int]) -> int:
        """How many greedy steps can run without the host: MAX_FUSED_STEPS when no row samples
        or is being fed forced tokens and none can reach its context or reasoning limit within
        them (tokens past a row's max_new_tokens are computed and dropped); else 1."""
        if not hasattr(self.core, "decode_many") or self._waiting:
            return 1
        for row in rows:
            state = self._active[row].state
            if state.sampling.temperature > 0 or state.forced:
                return 1
            if state.steps_without_host() < MAX_FUSED_STEPS:
                return 1
        return MAX_FUSED_STEPS

    def _decode(self) -> None:
        rows = sorted(self._active)
        steps = self._fused_steps(rows)
        if steps > 1:
            core: Any = self.core  # an optional method of a core (JaxCore has it)
            fused = core.decode_many(rows, [self._next[r] for r in rows], steps)
            self.stats.steps += steps
            self.stats.batch_sizes[len(rows)] += steps
            self.stats.max_batch = max(self.stats.max_batch, len(rows))
            # One merged event per request and call: fewer wake-ups of the callers' threads,
            # which would otherwise contend with this one for the GIL.
            pending: dict[int, list[Piece | Finished]] = {}
            for i in range(steps):
                live = [(j, r) for j, r in enumerate(rows) if r in self._active]
                if not live:
                    break
                self._consume([r for _, r in live], fused[i, [j for j, _ in live]], None, pending)
            for row, events in pending.items():
                self._emit(self._requests.pop(row), _merge(events))
            return
        want = any(self._active[r].state.needs_logits for r in rows)
        greedy, logits = self.core.decode(rows, [self._next[r] for r in rows], want)
        self.stats.steps += 1
        self.stats.batch_sizes[len(rows)] += 1
        self.stats.max_batch = max(self.stats.max_batch, len(rows))
        self._consume(rows, greedy, logits)

    def _consume(
        self,
        rows: list[int],
        greedy: np.ndarray,
        logits: np.ndarray | None,
        pending: dict[int, list[Piece | Finished]] | None = None,
    ) -> None:
        done: list[int] = []
        for i, row in enumerate(rows):
            request = self._active[row]
            state = request.state
            token, forced = state.next_token(int(greedy[i]), None if logits is None else logits[i])
            events = state.advance(token, forced)
            if pending is None:
                self._emit(request, events)
            else:
                pending.setdefault(row, []).extend(events)
                self._requests[row] = request
            if state.finished is not None:
                done.append(row)
            else:
                self._next[row] = token
        for row in done:
            del self._active[row]
            self._next.pop(row, None)
        if done:
            self.core.release(done)

    def _emit(self, request: _Request, events: list[Piece | Finished]) -> None:
        for event in events:
            request.send(event)

    def _fail_all(self, error: BaseException) -> None:
        with self._cond:
            requests = list(self._active.values()) + list(self._waiting)
            self._active.clear()
            self._waiting.clear()
            self._next.clear()
        for request in requests:
            request.send(error)
        if requests and not self._closed:
            with contextlib.suppress(Exception):  # already reporting the first error
                self.core.release(list(range(self.core.capacity)))


def _merge(events: list[Piece | Finished]) -> list[Piece | Finished]:
    """Consecutive Pieces joined into one (the text and token counts add up)."""
    out: list[Piece | Finished] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, Piece) and isinstance(last, Piece):
            out[-1] = Piece(last.text + event.text, last.token_count + event.token_count)
        else:
            out.append(event)
    return out


class BatchedEngine:
    """What the JAX and torch engines share (see base.Engine): the engine's description and a
    Scheduler running its DecodeCore. A subclass builds its core, then calls `__init__`."""

    backend: str  # "jax" | "torch", set by the subclass

    def __init__(
        self,
        core: DecodeCore,
        tokenizer: TextTokenizer,
        arch: ArchitectureConfig,
        *,
        itemsize: int,
        devices: list[str],
        capacity: int,
        parameter_count: int,
        weight_bytes: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.context_length = arch.context_length
        self.vocab_size = arch.vocab_size
        self.parameter_count = parameter_count
        self.memory_bytes = weight_bytes + kv_cache_bytes(arch, itemsize, capacity)
        self.devices = devices
        self.scheduler = Scheduler(core, tokenizer, arch.context_length, self.backend)

    def encode_prompt(self, text: str) -> list[int]:
        return [self.tokenizer.bos_id(), *self.tokenizer.encode(text)]

    def generate(
        self, prompt_ids: list[int], sampling: Sampling, cancelled: Callable[[], bool]
    ) -> Iterator[Piece | Finished]:
        return self.scheduler.generate(prompt_ids, sampling, cancelled)

    def generate_batch(
        self,
        prompts: list[list[int]],
        sampling: Sampling,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> list[Finished]:
        return self.scheduler.generate_batch(prompts, sampling, cancelled)

    def generate_to(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        cancelled: Callable[[], bool],
        deliver: Callable[[Event], None],
    ) -> None:
        self.scheduler.generate_to(prompt_ids, sampling, cancelled, deliver)

    def close(self) -> None:
        self.scheduler.close()
