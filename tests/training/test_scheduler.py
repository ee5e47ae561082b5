"""The training host's device table and queue: request parsing, refusal of requests that can never
fit, gang allocation, start order (priority, submission, aging) and the bounded backfill window."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from tunix_rt.training.scheduler import Device, DeviceRequest, Scheduler, parse_request


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def host(cpu: int = 0, gpu: int = 0) -> list[Device]:
    devices = [Device(id=f"gpu:{i}", kind="gpu", platform="cuda") for i in range(gpu)]
    devices += [Device(id=f"cpu:{i}", kind="cpu", platform="cpu") for i in range(cpu)]
    return devices


def scheduler(
    cpu: int = 0,
    gpu: int = 0,
    *,
    aging_seconds: float = 1e9,
    backfill_window_seconds: float = 300.0,
) -> tuple[Scheduler, FakeClock]:
    clock = FakeClock()
    sched = Scheduler(
        host(cpu=cpu, gpu=gpu),
        aging_seconds=aging_seconds,
        backfill_window_seconds=backfill_window_seconds,
        clock=clock,
    )
    return sched, clock


def started_ids(started: list[tuple[str, list[Device]]]) -> list[str]:
    return [job_id for job_id, _ in started]


def holders(sched: Scheduler) -> dict[str, str | None]:
    return {d.id: d.holder for d in sched.devices}


# parse_request


@pytest.mark.parametrize(
    ("text", "kind", "count"),
    [
        ("gpu:2", "gpu", 2),
        ("cpu:1", "cpu", 1),
        ("cpu", "cpu", 1),
        ("tpu:8", "tpu", 8),
        ("any", "any", 1),
        ("any:2", "any", 2),
        (" GPU:3 ", "gpu", 3),
        ("cpu:10", "cpu", 10),
    ],
)
def test_parse_request_accepts_kind_and_optional_count(text: str, kind: str, count: int) -> None:
    assert parse_request(text) == DeviceRequest(kind, count)


@pytest.mark.parametrize(
    "text",
    ["", "fpga:1", "gpu:0", "gpu:00", "gpu:-1", "gpu:x", "gpu:1.5", "gpu:1:2", "gpu:", "gpu:²"],
)
def test_parse_request_refuses_malformed_text_naming_the_devices_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_request(text)
    assert [v.field for v in caught.value.violations] == ["devices"]
    assert repr(text) in caught.value.message


def test_request_prints_as_kind_and_count() -> None:
    assert str(parse_request("gpu:2")) == "gpu:2"


# Refusal at submission


def test_more_devices_than_exist_is_refused_saying_what_exists() -> None:
    sched, _ = scheduler(cpu=2)
    with pytest.raises(FailedPrecondition) as caught:
        sched.check_fits_host(DeviceRequest("cpu", 3))
    assert "it has 2 cpu" in caught.value.message
    assert caught.value.reason == "DEVICES_UNAVAILABLE"
    assert caught.value.metadata == {"requested": "cpu:3", "host": "2 cpu"}


def test_absent_kind_is_refused_saying_what_exists() -> None:
    sched, _ = scheduler(cpu=2)
    with pytest.raises(FailedPrecondition) as caught:
        sched.check_fits_host(parse_request("gpu:3"))
    assert "3 gpu" in caught.value.message
    assert "it has 2 cpu" in caught.value.message


def test_refusal_lists_every_kind_on_a_mixed_host() -> None:
    sched, _ = scheduler(cpu=4, gpu=1)
    with pytest.raises(FailedPrecondition) as caught:
        sched.check_fits_host(DeviceRequest("gpu", 2))
    assert "it has 4 cpu, 1 gpu" in caught.value.message


def test_submit_refuses_an_impossible_request_and_queues_nothing() -> None:
    sched, _ = scheduler(cpu=2)
    with pytest.raises(FailedPrecondition):
        sched.submit("big", DeviceRequest("cpu", 3), priority=0)
    assert sched.queued() == []
    assert not sched.is_queued("big")


def test_a_request_that_fits_returns_its_kind() -> None:
    sched, _ = scheduler(cpu=2, gpu=2)
    assert sched.check_fits_host(DeviceRequest("cpu", 2)) == "cpu"
    assert sched.check_fits_host(DeviceRequest("gpu", 2)) == "gpu"


def test_a_count_below_one_is_an_invalid_argument() -> None:
    sched, _ = scheduler(cpu=2)
    with pytest.raises(InvalidArgument) as caught:
        sched.check_fits_host(DeviceRequest("cpu", 0))
    assert [v.field for v in caught.value.violations] == ["device_request.count"]


# `any`


def test_any_resolves_to_gpu_when_the_host_has_gpus() -> None:
    sched, _ = scheduler(cpu=4, gpu=2)
    assert sched.resolve_kind(parse_request("any")) == "gpu"
    assert sched.check_fits_host(parse_request("any:2")) == "gpu"
    sched.submit("job", parse_request("any:2"), priority=0)
    [(job_id, devices)] = sched.schedule()
    assert job_id == "job"
    assert [d.id for d in devices] == ["gpu:0", "gpu:1"]


def test_any_resolves_to_cpu_on_a_cpu_only_host() -> None:
    sched, _ = scheduler(cpu=4)
    assert sched.resolve_kind(parse_request("any")) == "cpu"
    assert sched.check_fits_host(parse_request("any:3")) == "cpu"


def test_any_means_the_accelerator_and_does_not_fall_back_to_cpu() -> None:
    sched, _ = scheduler(cpu=4, gpu=1)
    with pytest.raises(FailedPrecondition) as caught:
        sched.check_fits_host(parse_request("any:2"))
    assert "2 gpu" in caught.value.message


# Gang allocation


def test_a_job_gets_all_its_devices_or_none() -> None:
    sched, _ = scheduler(cpu=3)
    sched.submit("a", DeviceRequest("cpu", 2), priority=0)
    sched.submit("b", DeviceRequest("cpu", 2), priority=0)
    assert started_ids(sched.schedule()) == ["a"]
    # One cpu is free, but b needs two: it holds nothing and stays queued.
    assert sched.held_by("b") == []
    assert sched.schedule() == []
    assert [d.id for d in sched.free("cpu")] == ["cpu:2"]
    assert sched.queue_position("b") == 1

    sched.release("a")
    [(job_id, devices)] = sched.schedule()
    assert job_id == "b"
    assert len(devices) == 2
    assert {d.holder for d in devices} == {"b"}


def test_two_jobs_wanting_the_whole_cpu_pool_run_one_after_the_other() -> None:
    sched, _ = scheduler(cpu=2)
    sched.submit("first", DeviceRequest("cpu", 2), priority=0)
    sched.submit("second", DeviceRequest("cpu", 2), priority=0)

    [(job_id, devices)] = sched.schedule()
    assert job_id == "first"
    assert [d.id for d in devices] == ["cpu:0", "cpu:1"]
    assert sched.queue_position("second") == 1
    assert sched.schedule() == []
    assert sched.queue_position("second") == 1

    assert sorted(sched.release("first")) == ["cpu:0", "cpu:1"]
    [(job_id, devices)] = sched.schedule()
    assert job_id == "second"
    assert [d.id for d in devices] == ["cpu:0", "cpu:1"]
    assert sched.queue_position("second") == 0
    assert holders(sched) == {"cpu:0": "second", "cpu:1": "second"}


def test_allocation_records_when_each_device_was_taken() -> None:
    sched, clock = scheduler(cpu=2)
    clock.now = 5_000.0
    sched.submit("a", DeviceRequest("cpu", 1), priority=0)
    [(_, [device])] = sched.schedule()
    assert device.allocate_time == 5_000.0
    sched.release("a")
    assert device.allocate_time is None


# Start order


def test_queued_jobs_start_by_priority() -> None:
    sched, _ = scheduler(cpu=1)
    sched.submit("running", DeviceRequest("cpu", 1), priority=0)
    assert started_ids(sched.schedule()) == ["running"]
    sched.submit("low", DeviceRequest("cpu", 1), priority=0)
    sched.submit("high", DeviceRequest("cpu", 1), priority=5)
    sched.submit("mid", DeviceRequest("cpu", 1), priority=2)
    assert sched.queued() == ["high", "mid", "low"]
    assert [sched.queue_position(j) for j in ("high", "mid", "low")] == [1, 2, 3]

    order = []
    previous = "running"
    for _ in range(3):
        sched.release(previous)
        [previous] = started_ids(sched.schedule())
        order.append(previous)
    assert order == ["high", "mid", "low"]


def test_jobs_of_equal_priority_start_in_submission_order() -> None:
    sched, clock = scheduler(cpu=1)
    sched.submit("running", DeviceRequest("cpu", 1), priority=3)
    sched.schedule()
    for name in ("a", "b", "c", "d"):
        sched.submit(name, DeviceRequest("cpu", 1), priority=3)
    assert sched.queued() == ["a", "b", "c", "d"]
    clock.advance(10_000)  # they all age alike: the order holds
    assert sched.queued() == ["a", "b", "c", "d"]

    order = []
    previous = "running"
    for _ in range(4):
        sched.release(previous)
        [previous] = started_ids(sched.schedule())
        order.append(previous)
    assert order == ["a", "b", "c", "d"]


def test_equal_priority_keeps_submission_order_even_when_submitted_in_the_same_instant() -> None:
    sched, _ = scheduler(cpu=1)
    for name in ("x", "y", "z"):
        sched.submit(name, DeviceRequest("cpu", 1), priority=0)
    assert started_ids(sched.schedule()) == ["x"]
    assert sched.queued() == ["y", "z"]


def test_aging_lets_an_old_low_priority_job_overtake() -> None:
    sched, clock = scheduler(cpu=1, aging_seconds=10.0)
    sched.submit("running", DeviceRequest("cpu", 1), priority=0)
    sched.schedule()
    sched.submit("old-low", DeviceRequest("cpu", 1), priority=0)
    clock.advance(25)  # old-low is worth 2.5 now
    sched.submit("new-high", DeviceRequest("cpu", 1), priority=3)
    assert sched.queued() == ["new-high", "old-low"]

    clock.advance(10)  # old-low 3.5 against new-high 3 + 1.0: still behind
    assert sched.queued() == ["new-high", "old-low"]

    sched2, clock2 = scheduler(cpu=1, aging_seconds=10.0)
    sched2.submit("running", DeviceRequest("cpu", 1), priority=0)
    sched2.schedule()
    sched2.submit("old-low", DeviceRequest("cpu", 1), priority=0)
    clock2.advance(35)  # old-low is worth 3.5 by the time new-high (3) arrives
    sched2.submit("new-high", DeviceRequest("cpu", 1), priority=3)
    assert sched2.queued() == ["old-low", "new-high"]
    assert sched2.queue_position("old-low") == 1
    sched2.release("running")
    assert started_ids(sched2.schedule()) == ["old-low"]


def test_aging_overtakes_a_stream_of_higher_priority_arrivals() -> None:
    sched, clock = scheduler(cpu=1, aging_seconds=10.0)
    sched.submit("running-0", DeviceRequest("cpu", 1), priority=0)
    sched.schedule()
    sched.submit("low", DeviceRequest("cpu", 1), priority=0)
    started = []
    previous = "running-0"
    # Every 10 s a fresh priority-5 job arrives and the running job ends.
    for i in range(1, 10):
        clock.advance(10)
        sched.submit(f"high-{i}", DeviceRequest("cpu", 1), priority=5)
        sched.release(previous)
        [previous] = started_ids(sched.schedule())
        started.append(previous)
    assert "low" in started
    # At 50 s its age (1 point per 10 s) equals a newcomer's priority 5; the tie goes to the
    # earlier submission.
    assert started.index("low") == 4


# Backfill and starvation


def test_small_jobs_backfill_around_a_young_big_job_of_the_same_kind() -> None:
    sched, _ = scheduler(cpu=4, backfill_window_seconds=60)
    sched.submit("small-0", DeviceRequest("cpu", 1), priority=0)
    assert started_ids(sched.schedule()) == ["small-0"]
    sched.submit("big", DeviceRequest("cpu", 4), priority=0)
    sched.submit("small-1", DeviceRequest("cpu", 1), priority=0)
    sched.submit("small-2", DeviceRequest("cpu", 1), priority=0)
    assert started_ids(sched.schedule()) == ["small-1", "small-2"]
    assert sched.queued() == ["big"]


def test_a_big_job_behind_a_stream_of_small_ones_starts_after_the_backfill_window() -> None:
    sched, clock = scheduler(cpu=4, backfill_window_seconds=60)
    for i in range(4):
        sched.submit(f"small-{i}", DeviceRequest("cpu", 1), priority=0)
    assert started_ids(sched.schedule()) == [f"small-{i}" for i in range(4)]
    sched.submit("big", DeviceRequest("cpu", 4), priority=0)

    # While big is young, each freed slot goes to the next small job.
    next_small = 4
    for finished in range(2):
        clock.advance(20)
        sched.submit(f"small-{next_small}", DeviceRequest("cpu", 1), priority=0)
        sched.release(f"small-{finished}")
        assert started_ids(sched.schedule()) == [f"small-{next_small}"]
        next_small += 1
    assert sched.queue_position("big") == 1

    # Past the window nothing else starts until big fits, however many small jobs arrive.
    clock.advance(21)
    still_running = ["small-2", "small-3", "small-4", "small-5"]
    for running in still_running[:-1]:
        sched.submit(f"small-{next_small}", DeviceRequest("cpu", 1), priority=0)
        next_small += 1
        sched.release(running)
        assert sched.schedule() == []
        assert sched.queue_position("big") == 1
    assert len(sched.free("cpu")) == 3

    sched.release(still_running[-1])
    [(job_id, devices)] = sched.schedule()
    assert job_id == "big"
    assert sorted(d.id for d in devices) == ["cpu:0", "cpu:1", "cpu:2", "cpu:3"]
    waiting = sched.queued()
    assert waiting == ["small-6", "small-7", "small-8"]

    # The small jobs queued behind it start once it is done.
    sched.release("big")
    assert started_ids(sched.schedule()) == waiting


def test_an_old_big_job_reserves_only_its_own_kind() -> None:
    sched, clock = scheduler(cpu=2, gpu=2, backfill_window_seconds=60)
    sched.submit("gpu-small", DeviceRequest("gpu", 1), priority=0)
    sched.schedule()
    sched.submit("gpu-big", DeviceRequest("gpu", 2), priority=0)
    clock.advance(61)
    sched.submit("gpu-other", DeviceRequest("gpu", 1), priority=0)
    sched.submit("cpu-job", DeviceRequest("cpu", 2), priority=0)
    # gpu-other would fit on the free gpu but gpu-big holds its claim; cpu is unaffected.
    assert started_ids(sched.schedule()) == ["cpu-job"]
    assert sched.queued() == ["gpu-big", "gpu-other"]


def test_a_job_waiting_for_a_cluster_to_grow_back_reserves_nothing() -> None:
    """A job requeued wider than what is left (its node left a Ray cluster) is queued without
    the never-fits check and waits; smaller jobs keep starting past the backfill window, since
    no release could make it fit. It starts once the inventory has grown back."""
    sched, clock = scheduler(cpu=2, backfill_window_seconds=60)
    sched.submit("wide", DeviceRequest("cpu", 3), priority=0, check=False)
    clock.advance(61)
    sched.submit("small", DeviceRequest("cpu", 1), priority=0)
    assert started_ids(sched.schedule()) == ["small"]
    assert sched.queued() == ["wide"]
    sched.release("small")
    sched.devices.append(Device(id="cpu:2", kind="cpu", platform="cpu"))  # a node joined
    assert started_ids(sched.schedule()) == ["wide"]


def test_submissions_are_refused_unavailable_while_the_inventory_is_unreachable() -> None:
    sched, _ = scheduler(cpu=1)
    sched.unavailable = lambda: "the Ray cluster at 127.0.0.1:6379 is unreachable"
    with pytest.raises(Unavailable, match="unreachable"):
        sched.submit("job", DeviceRequest("cpu", 1), priority=0)
    assert sched.queued() == []


# Release, restore, queue position


def test_release_frees_exactly_the_jobs_devices() -> None:
    sched, _ = scheduler(cpu=4, gpu=1)
    sched.submit("a", DeviceRequest("cpu", 2), priority=0)
    sched.submit("b", DeviceRequest("cpu", 1), priority=0)
    sched.submit("g", DeviceRequest("gpu", 1), priority=0)
    sched.schedule()
    assert holders(sched) == {
        "gpu:0": "g",
        "cpu:0": "a",
        "cpu:1": "a",
        "cpu:2": "b",
        "cpu:3": None,
    }

    assert sorted(sched.release("a")) == ["cpu:0", "cpu:1"]
    assert holders(sched) == {
        "gpu:0": "g",
        "cpu:0": None,
        "cpu:1": None,
        "cpu:2": "b",
        "cpu:3": None,
    }
    assert [d.id for d in sched.held_by("b")] == ["cpu:2"]
    assert sched.release("a") == []
    assert sched.release("never-ran") == []


def test_restore_after_restart_marks_devices_held() -> None:
    sched, _ = scheduler(cpu=4)
    held = sched.restore("survivor", ["cpu:1", "cpu:2"])
    assert sorted(d.id for d in held) == ["cpu:1", "cpu:2"]
    assert sorted(d.id for d in sched.held_by("survivor")) == ["cpu:1", "cpu:2"]

    sched.submit("needs-3", DeviceRequest("cpu", 3), priority=1)
    sched.submit("needs-2", DeviceRequest("cpu", 2), priority=0)
    [(job_id, devices)] = sched.schedule()
    assert job_id == "needs-2"
    assert [d.id for d in devices] == ["cpu:0", "cpu:3"]

    assert sorted(sched.release("survivor")) == ["cpu:1", "cpu:2"]


def test_restore_skips_devices_already_held_and_ids_the_host_lacks() -> None:
    sched, _ = scheduler(cpu=2)
    sched.restore("first", ["cpu:0"])
    held = sched.restore("second", ["cpu:0", "cpu:1", "gpu:7"])
    assert [d.id for d in held] == ["cpu:1"]
    assert holders(sched) == {"cpu:0": "first", "cpu:1": "second"}


def test_queue_position_follows_starts_and_removals() -> None:
    sched, _ = scheduler(cpu=1)
    for name in ("a", "b", "c", "d"):
        sched.submit(name, DeviceRequest("cpu", 1), priority=0)
    sched.schedule()
    assert [sched.queue_position(n) for n in ("a", "b", "c", "d")] == [0, 1, 2, 3]
    assert sched.queue_position("unknown") == 0

    assert sched.remove("c")
    assert not sched.remove("c")
    assert not sched.is_queued("c")
    assert sched.queue_position("d") == 2

    sched.release("a")
    sched.schedule()
    assert [sched.queue_position(n) for n in ("b", "d")] == [0, 1]
    assert sched.is_queued("d")


def test_inventory_counts_devices_by_kind() -> None:
    sched, _ = scheduler(cpu=3, gpu=2)
    assert sched.by_kind() == {"cpu": 3, "gpu": 2}
    assert [d.index for d in sched.free("cpu")] == [0, 1, 2]


# Requests naming their devices


def test_a_request_naming_devices_gets_exactly_those() -> None:
    sched, _ = scheduler(cpu=3)
    sched.submit("named", DeviceRequest("cpu", 2, ("cpu:2", "cpu:0")), priority=0)
    started = sched.schedule()
    assert started_ids(started) == ["named"]
    assert holders(sched) == {"cpu:0": "named", "cpu:1": None, "cpu:2": "named"}


def test_a_request_naming_a_held_device_waits_for_it_while_others_are_free() -> None:
    sched, _ = scheduler(cpu=2)
    sched.submit("first", DeviceRequest("cpu", 1), priority=0)
    assert started_ids(sched.schedule()) == ["first"]  # takes cpu:0
    sched.submit("named", DeviceRequest("cpu", 1, ("cpu:0",)), priority=0)
    assert sched.schedule() == []  # cpu:1 is free, but it asked for cpu:0
    assert sched.is_queued("named")
    sched.release("first")
    started = sched.schedule()
    assert [(job, [d.id for d in held]) for job, held in started] == [("named", ["cpu:0"])]


def test_a_request_naming_a_device_the_host_lacks_is_refused_saying_what_exists() -> None:
    sched, _ = scheduler(cpu=2)
    with pytest.raises(FailedPrecondition) as caught:
        sched.check_fits_host(DeviceRequest("cpu", 1, ("cpu:5",)))
    assert "no device cpu:5" in caught.value.message
    assert "it has 2 cpu" in caught.value.message
    assert caught.value.metadata["requested"] == "cpu:[5]"
