"""Device inventory, gang allocation and the job queue of one training host, as plain Python.

Policy: queued jobs are ordered by effective priority, then submission order. A job's effective
priority is its priority plus one point per `aging_seconds` it has waited, so a low-priority job
rises until it is first. Jobs start in that order when all the devices they ask for are free (gang
allocation: all or nothing). When the first job in the order does not fit, later jobs may start
on the devices left ("backfill") only while that first job has waited less than
`backfill_window_seconds`; after that nothing starts ahead of it until it fits, so no job waits
forever behind a stream of smaller ones. Aging alone cannot give that guarantee (small jobs could
keep the devices busy), and pure first-come order would leave devices idle behind every large job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument, Unavailable

KINDS = ("gpu", "tpu", "cpu")
ANY = "any"


@dataclass
class Device:
    """One allocatable device: an accelerator or a CPU slot."""

    id: str  # `{kind}:{index}`
    kind: str  # gpu | tpu | cpu
    platform: str  # cuda | rocm | tpu | cpu
    description: str = ""
    memory_bytes: int = 0
    supports_bfloat16: bool = False
    holder: str | None = None  # the job id holding it
    allocate_time: float | None = None
    # Peak dense FLOP/s (training.peak_flops): float32, bfloat16 and where they come from.
    peak_flops_fp32: float = 0.0
    peak_flops_bf16: float = 0.0
    peak_flops_source: str = ""
    # The node that owns it, `{address}/{node id}`, under the Ray executor; "" on this host.
    host: str = ""

    @property
    def index(self) -> int:
        return int(self.id.split(":", 1)[1])


@dataclass(frozen=True)
class DeviceRequest:
    """A kind (or `any`) and a count, allocated all or nothing; or, with `ids`, exactly those
    devices (of kind `kind`, `count` of them)."""

    kind: str = ANY
    count: int = 1
    ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.ids:
            return f"{self.kind}:[{','.join(i.partition(':')[2] for i in self.ids)}]"
        return f"{self.kind}:{self.count}"


def parse_request(text: str) -> DeviceRequest:
    """Parses `gpu:2`, `cpu`, `any` or `any:2`; raises InvalidArgument (field `devices`)."""
    kind, colon, count = text.strip().lower().partition(":")
    # ASCII digits only (`str.isdigit` also accepts `²`, which `int` rejects) and at least 1 (so
    # `gpu:00` is refused too); a colon needs a count after it.
    count_ok = not colon or (count.isascii() and count.isdigit() and int(count) >= 1)
    if kind not in (*KINDS, ANY) or not count_ok:
        raise InvalidArgument.field(
            "devices", f"{text!r} is not KIND[:COUNT] with KIND gpu, tpu, cpu or any"
        )
    return DeviceRequest(kind, int(count) if count else 1)


@dataclass
class QueuedJob:
    job_id: str
    request: DeviceRequest
    priority: int
    sequence: int
    submit_time: float


@dataclass
class Scheduler:
    """The allocation table and the queue. Not thread-safe: the service drives it from its event
    loop only."""

    devices: list[Device]
    aging_seconds: float = 600.0
    backfill_window_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    # What the inventory is, in refusals: "this host", or (a function giving) the cluster under
    # the Ray executor, whose nodes come and go.
    place: str | Callable[[], str] = "this host"
    # Why nothing can be submitted now ("" when it can): a Ray cluster that does not answer.
    unavailable: Callable[[], str] = lambda: ""
    _queue: list[QueuedJob] = field(default_factory=list)
    _sequence: int = 0

    # Inventory.

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for device in self.devices:
            counts[device.kind] = counts.get(device.kind, 0) + 1
        return counts

    def _describe_host(self) -> str:
        counts = self.by_kind()
        return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no devices"

    def _place(self) -> str:
        return self.place() if callable(self.place) else self.place

    def resolve_kind(self, request: DeviceRequest) -> str:
        """The concrete kind of a request: `any` is the host's accelerator kind, else cpu."""
        if request.kind != ANY:
            return request.kind
        counts = self.by_kind()
        return next((kind for kind in KINDS if counts.get(kind)), "cpu")

    def check_fits_host(self, request: DeviceRequest) -> str:
        """Refuses, at submission, a request this host can never satisfy; returns its kind."""
        if request.count < 1:
            raise InvalidArgument.field("device_request.count", "must be at least 1")
        if why := self.unavailable():
            raise Unavailable(why)
        kind = self.resolve_kind(request)
        have = self.by_kind().get(kind, 0)
        missing = sorted(set(request.ids) - {d.id for d in self.devices})
        if missing:
            raise FailedPrecondition(
                f"{self._place()} has no device {', '.join(missing)}: it has "
                f"{self._describe_host()} "
                "(see ListDevices)",
                reason="DEVICES_UNAVAILABLE",
                metadata={"requested": str(request), "host": self._describe_host()},
            )
        if request.count > have:
            raise FailedPrecondition(
                f"{self._place()} can never run {request.count} {kind} device(s): it has "
                f"{self._describe_host()}",
                reason="DEVICES_UNAVAILABLE",
                metadata={"requested": f"{kind}:{request.count}", "host": self._describe_host()},
            )
        return kind

    # Queue.

    def submit(
        self, job_id: str, request: DeviceRequest, priority: int, check: bool = True
    ) -> None:
        """Queues a job; with `check`, refuses one the inventory can never run (without: a job
        that waits for a cluster to grow back)."""
        if check:
            self.check_fits_host(request)
        self._sequence += 1
        self._queue.append(QueuedJob(job_id, request, priority, self._sequence, self.clock()))

    def remove(self, job_id: str) -> bool:
        """Drops a queued job (cancelled); returns whether it was queued."""
        before = len(self._queue)
        self._queue = [q for q in self._queue if q.job_id != job_id]
        return len(self._queue) != before

    def is_queued(self, job_id: str) -> bool:
        return any(q.job_id == job_id for q in self._queue)

    def _order(self) -> list[QueuedJob]:
        now = self.clock()

        def key(job: QueuedJob) -> tuple[float, int]:
            waited = now - job.submit_time
            return (-(job.priority + waited / self.aging_seconds), job.sequence)

        return sorted(self._queue, key=key)

    def queue_position(self, job_id: str) -> int:
        """1-based position in start order; 0 when not queued."""
        for position, job in enumerate(self._order(), start=1):
            if job.job_id == job_id:
                return position
        return 0

    def queued(self) -> list[str]:
        return [job.job_id for job in self._order()]

    # Allocation.

    def free(self, kind: str) -> list[Device]:
        return sorted(
            (d for d in self.devices if d.kind == kind and d.holder is None),
            key=lambda d: d.index,
        )

    def schedule(self) -> list[tuple[str, list[Device]]]:
        """Allocates devices to every queued job that may start now, in policy order, and
        returns (job id, devices) for each; those jobs leave the queue."""
        started: list[tuple[str, list[Device]]] = []
        blocked_kinds: set[str] = set()
        for job in self._order():
            kind = self.resolve_kind(job.request)
            if kind in blocked_kinds:
                continue
            free = self.free(kind)
            if job.request.ids:
                free = [d for d in free if d.id in job.request.ids]
            if len(free) >= job.request.count:
                chosen = free[: job.request.count]
                self._hold(job.job_id, chosen)
                self._queue.remove(job)
                started.append((job.job_id, chosen))
                continue
            # The first job that does not fit: later jobs of its kind may backfill only while it
            # is young; after the window it reserves its kind until it fits. One wider than the
            # inventory (waiting for a cluster to grow back) reserves nothing: no release helps.
            old_enough = self.clock() - job.submit_time >= self.backfill_window_seconds
            if old_enough and job.request.count <= self.by_kind().get(kind, 0):
                blocked_kinds.add(kind)
        return started

    def _hold(self, job_id: str, devices: Iterable[Device]) -> None:
        now = self.clock()
        for device in devices:
            device.holder = job_id
            device.allocate_time = now

    def restore(self, job_id: str, device_ids: Iterable[str]) -> list[Device]:
        """Marks devices held by a job that was running before the service restarted."""
        wanted = set(device_ids)
        held = [d for d in self.devices if d.id in wanted and d.holder is None]
        self._hold(job_id, held)
        return held

    def release(self, job_id: str) -> list[str]:
        """Frees every device `job_id` holds; returns their ids."""
        freed = []
        for device in self.devices:
            if device.holder == job_id:
                device.holder = None
                device.allocate_time = None
                freed.append(device.id)
        return freed

    def held_by(self, job_id: str) -> list[Device]:
        return [d for d in self.devices if d.holder == job_id]
