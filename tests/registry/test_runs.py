"""Runs through the real server: the state machine, timestamps, devices and errors, listing, the
event history (batched, idempotent, gap-free, paginated) and checkpoints."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, cast

import grpc
import pytest

from tests.registry.helpers import (
    Stub,
    bad_request_fields,
    error_reason,
    make_trace,
    race,
    resource_info,
    rpc_error,
    struct,
    unique,
)
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import run_pb2

S = run_pb2.RunState
QUEUED, RUNNING = S.RUN_STATE_QUEUED, S.RUN_STATE_RUNNING
SUCCEEDED, FAILED, CANCELLED = S.RUN_STATE_SUCCEEDED, S.RUN_STATE_FAILED, S.RUN_STATE_CANCELLED
STATES = [QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED]
LEGAL = {
    (QUEUED, RUNNING),
    (QUEUED, CANCELLED),
    (RUNNING, SUCCEEDED),
    (RUNNING, FAILED),
    (RUNNING, CANCELLED),
    (RUNNING, QUEUED),
    (FAILED, QUEUED),
    (CANCELLED, QUEUED),
}
# Proto3 enums are open: any number can arrive on the wire.
UNKNOWN_STATE = cast(run_pb2.RunState, 42)
# A legal path from QUEUED to each state.
PATH_TO = {
    QUEUED: [],
    RUNNING: [RUNNING],
    SUCCEEDED: [RUNNING, SUCCEEDED],
    FAILED: [RUNNING, FAILED],
    CANCELLED: [CANCELLED],
}


def create_run(stub: Stub, **fields: Any) -> run_pb2.Run:
    run_id = fields.pop("run_id", "")
    run: run_pb2.Run = stub.CreateRun(
        pb.CreateRunRequest(run=run_pb2.Run(**fields), run_id=run_id)
    ).run
    return run


def transition(stub: Stub, name: str, state: run_pb2.RunState, **kw: Any) -> run_pb2.Run:
    run: run_pb2.Run = stub.TransitionRun(pb.TransitionRunRequest(name=name, state=state, **kw)).run
    return run


def run_in(stub: Stub, state: run_pb2.RunState) -> run_pb2.Run:
    run = create_run(stub, owner=unique("owner"))
    for step in PATH_TO[state]:
        run = transition(stub, run.name, step, reason="test")
    assert run.state == state
    return run


def metrics_event(sequence: int, **values: float) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(
        sequence=sequence, step=sequence * 10, metrics=run_pb2.MetricValues(values=values)
    )


def append(stub: Stub, name: str, sequences: list[int]) -> pb.AppendRunEventsResponse:
    response: pb.AppendRunEventsResponse = stub.AppendRunEvents(
        pb.AppendRunEventsRequest(
            run=name, events=[metrics_event(n, loss=1.0 / n) for n in sequences]
        )
    )
    return response


# Create, get.


def test_create_run_is_queued(stub: Stub) -> None:
    config = {"learning_rate": 0.001, "model": {"name": "gemma-2b"}, "steps": 100}
    run = create_run(
        stub,
        display_name="first run",
        config=struct(config),
        owner="trainer-a",
        priority=3,
        labels={"team": "rt"},
        state=SUCCEEDED,  # output only: ignored
    )
    assert run.name.startswith("runs/")
    assert run.state == QUEUED
    assert run.create_time.seconds > 0
    assert not run.HasField("start_time") and not run.HasField("end_time")
    assert not run.HasField("error")
    assert run.last_sequence == 0
    assert (run.display_name, run.owner, run.priority) == ("first run", "trainer-a", 3)
    assert dict(run.labels) == {"team": "rt"}
    assert run.config == struct(config)
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run == run


def test_create_run_with_id_and_dataset(stub: Stub) -> None:
    trace = stub.CreateTrace(pb.CreateTraceRequest(trace=make_trace(source=unique()))).trace
    dataset = stub.CreateDataset(
        pb.CreateDatasetRequest(
            dataset_id=unique("ds"), trace_names=pb.TraceNames(names=[trace.name])
        )
    ).dataset
    run_id = unique("run")
    run = create_run(stub, run_id=run_id, dataset=dataset.name)
    assert run.name == f"runs/{run_id}"
    assert run.dataset == dataset.name
    err = rpc_error(grpc.StatusCode.ALREADY_EXISTS, lambda: create_run(stub, run_id=run_id))
    assert resource_info(err).resource_name == run.name
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run == run  # the first is kept


def test_create_run_bad_input(stub: Stub) -> None:
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: create_run(stub, run_id="../x"))
    assert bad_request_fields(err) == ["run_id"]
    err = rpc_error(
        grpc.StatusCode.NOT_FOUND, lambda: create_run(stub, dataset="datasets/" + unique("none"))
    )
    assert resource_info(err).resource_type == "dataset"
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: create_run(stub, dataset="a/b/c"))
    assert bad_request_fields(err) == ["run.dataset"]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: create_run(stub, display_name="x" * 257)
    )
    assert bad_request_fields(err) == ["run.display_name"]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: create_run(stub, config=struct({"lr": float("inf")})),
    )
    assert bad_request_fields(err) == ["run.config"]


def test_create_run_with_request_id_is_idempotent(stub: Stub) -> None:
    owner = unique("owner")
    request = pb.CreateRunRequest(run=run_pb2.Run(owner=owner), request_id=unique("req"))
    first = stub.CreateRun(request).run
    assert stub.CreateRun(request).run == first
    listed = stub.ListRuns(pb.ListRunsRequest(owner=owner)).runs
    assert [r.name for r in listed] == [first.name]


def test_get_unknown_run_is_not_found(stub: Stub) -> None:
    err = rpc_error(
        grpc.StatusCode.NOT_FOUND, lambda: stub.GetRun(pb.GetRunRequest(name="runs/never"))
    )
    assert resource_info(err).resource_name == "runs/never"


# Transitions.


@pytest.mark.parametrize(
    ("source", "target"),
    [
        pytest.param(a, b, id=f"{S.Name(a)[10:]}->{S.Name(b)[10:]}")
        for a, b in itertools.product(STATES, STATES)
    ],
)
def test_every_transition(stub: Stub, source: run_pb2.RunState, target: run_pb2.RunState) -> None:
    run = run_in(stub, source)
    if (source, target) in LEGAL:
        moved = transition(stub, run.name, target, reason="because")
        assert moved.state == target
        assert stub.GetRun(pb.GetRunRequest(name=run.name)).run == moved
    else:
        err = rpc_error(
            grpc.StatusCode.FAILED_PRECONDITION, lambda: transition(stub, run.name, target)
        )
        assert error_reason(err) == "ILLEGAL_RUN_TRANSITION"
        assert stub.GetRun(pb.GetRunRequest(name=run.name)).run == run  # nothing changed


def test_transition_to_unspecified_or_unknown_state_is_invalid(stub: Stub) -> None:
    run = create_run(stub)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: transition(stub, run.name, S.RUN_STATE_UNSPECIFIED),
    )
    assert bad_request_fields(err) == ["state"]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: transition(stub, run.name, UNKNOWN_STATE)
    )
    assert bad_request_fields(err) == ["state"]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: transition(stub, run.name, RUNNING, expected_state=UNKNOWN_STATE),
    )
    assert bad_request_fields(err) == ["expected_state"]


def test_expected_state_is_a_condition(stub: Stub) -> None:
    run = create_run(stub)
    err = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: transition(stub, run.name, CANCELLED, expected_state=RUNNING),
    )
    assert error_reason(err) == "RUN_STATE_MISMATCH"
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run.state == QUEUED
    assert transition(stub, run.name, RUNNING, expected_state=QUEUED).state == RUNNING


def test_concurrent_claims_have_one_winner(stub: Stub) -> None:
    run = create_run(stub)
    outcomes: list[str] = []
    lock = threading.Lock()

    def claim(owner: str) -> None:
        try:
            transition(stub, run.name, RUNNING, expected_state=QUEUED, owner=owner)
            result = owner
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
            result = "lost"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=claim, args=(f"trainer-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o != "lost"]
    assert len(winners) == 1
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run.owner == winners[0]


def test_timestamps_devices_and_errors_are_recorded(stub: Stub) -> None:
    run = create_run(stub, config=struct({"lr": 0.1}))
    devices = run_pb2.DeviceAssignment(
        kind="gpu", count=2, ids=["0", "1"], platform="cuda", host="h"
    )
    running = transition(
        stub,
        run.name,
        RUNNING,
        devices=devices,
        owner="trainer-b",
        config_update=struct({"devices_used": 2}),
    )
    assert running.HasField("start_time")
    assert not running.HasField("end_time")
    assert running.devices == devices
    assert running.owner == "trainer-b"
    assert running.config == struct({"lr": 0.1, "devices_used": 2})
    assert running.update_time.ToDatetime() >= run.update_time.ToDatetime()

    failed = transition(stub, run.name, FAILED, reason="CUDA out of memory")
    assert failed.HasField("end_time")
    assert failed.end_time.ToDatetime() >= running.start_time.ToDatetime()
    assert failed.error.message == "CUDA out of memory"
    assert failed.error.code != 0
    assert failed.devices == devices  # the devices it last held

    requeued = transition(stub, run.name, QUEUED, reason="resume")
    assert requeued.state == QUEUED
    assert not requeued.HasField("end_time")
    assert not requeued.HasField("error")

    again = transition(stub, run.name, RUNNING)
    assert again.start_time.ToDatetime() >= failed.end_time.ToDatetime()
    done = transition(stub, run.name, SUCCEEDED)
    assert done.HasField("end_time")
    assert not done.HasField("error")


def test_cancel_records_a_cancelled_error(stub: Stub) -> None:
    run = create_run(stub)
    cancelled = transition(stub, run.name, CANCELLED, reason="user asked")
    assert cancelled.HasField("end_time")
    assert cancelled.error.code == grpc.StatusCode.CANCELLED.value[0]
    assert cancelled.error.message == "user asked"


def test_owner_too_long_is_invalid(stub: Stub) -> None:
    run = create_run(stub)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: transition(stub, run.name, RUNNING, owner="o" * 257),
    )
    assert bad_request_fields(err) == ["owner"]
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run == run


# Listing.


def test_list_runs_by_state_owner_and_dataset(stub: Stub) -> None:
    owner = unique("owner")
    trace = stub.CreateTrace(pb.CreateTraceRequest(trace=make_trace(source=unique()))).trace
    dataset = stub.CreateDataset(
        pb.CreateDatasetRequest(
            dataset_id=unique("ds"), trace_names=pb.TraceNames(names=[trace.name])
        )
    ).dataset
    runs = [create_run(stub, owner=owner) for _ in range(5)]
    on_dataset = [create_run(stub, owner=owner, dataset=dataset.name) for _ in range(2)]
    for run in runs[:3]:
        transition(stub, run.name, RUNNING)
    transition(stub, runs[0].name, SUCCEEDED)

    def names(page_size: int = 2, **filters: Any) -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            page = stub.ListRuns(
                pb.ListRunsRequest(page_size=page_size, page_token=token, **filters)
            )
            assert len(page.runs) <= page_size
            seen.extend(r.name for r in page.runs)
            token = page.next_page_token
            if not token:
                return seen

    everything = [r.name for r in runs + on_dataset]
    assert names(owner=owner) == everything  # oldest first, every page
    assert names(owner=owner, states=[RUNNING]) == [r.name for r in runs[1:3]]
    assert names(owner=owner, states=[QUEUED, SUCCEEDED]) == [
        runs[0].name,
        *[r.name for r in runs[3:]],
        *[r.name for r in on_dataset],
    ]
    assert names(owner=owner, dataset=dataset.name) == [r.name for r in on_dataset]
    assert names(owner=unique("nobody")) == []
    assert set(everything) <= set(names(page_size=1000))

    first = stub.ListRuns(pb.ListRunsRequest(owner=owner, page_size=1))
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListRuns(
            pb.ListRunsRequest(owner=owner, states=[RUNNING], page_token=first.next_page_token)
        ),
    )
    assert bad_request_fields(err) == ["page_token"]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListRuns(pb.ListRunsRequest(states=[UNKNOWN_STATE])),
    )
    assert bad_request_fields(err) == ["states[0]"]


# Events.


def test_append_events_in_batches_idempotently(stub: Stub) -> None:
    run = create_run(stub)
    first = append(stub, run.name, [1, 2, 3])
    assert (first.appended_count, first.last_sequence) == (3, 3)
    again = append(stub, run.name, [1, 2, 3])
    assert (again.appended_count, again.last_sequence) == (0, 3)
    overlap = append(stub, run.name, [2, 3, 4, 5])
    assert (overlap.appended_count, overlap.last_sequence) == (2, 5)
    unordered = append(stub, run.name, [7, 6])  # order within a batch does not matter
    assert (unordered.appended_count, unordered.last_sequence) == (2, 7)
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run.last_sequence == 7
    events = stub.ListRunEvents(pb.ListRunEventsRequest(run=run.name)).events
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6, 7]
    # A retried batch does not overwrite what was stored first.
    assert events[0].metrics.values["loss"] == pytest.approx(1.0)


def test_a_gap_is_refused_and_nothing_of_the_batch_is_stored(stub: Stub) -> None:
    run = create_run(stub)
    append(stub, run.name, [1, 2])
    err = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: append(stub, run.name, [4]))
    assert error_reason(err) == "RUN_EVENT_GAP"
    rpc_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: append(stub, run.name, [3, 5]))
    events = stub.ListRunEvents(pb.ListRunEventsRequest(run=run.name))
    assert [e.sequence for e in events.events] == [1, 2]  # 3 was not kept either
    assert events.last_sequence == 2
    assert append(stub, run.name, [3]).appended_count == 1


def test_every_payload_kind_round_trips(stub: Stub) -> None:
    run = create_run(stub)
    events = [
        metrics_event(1, loss=0.5, accuracy=0.75),
        run_pb2.RunEvent(
            sequence=2,
            state_change=run_pb2.StateChange(from_state=QUEUED, to_state=RUNNING, reason="claimed"),
        ),
        run_pb2.RunEvent(sequence=3, step=5, log=run_pb2.LogLine(level="INFO", message="hello")),
        run_pb2.RunEvent(
            sequence=4, checkpoint_saved=run_pb2.CheckpointSaved(checkpoint="runs/x/checkpoints/5")
        ),
    ]
    events[2].time.FromSeconds(1_700_000_000)
    stub.AppendRunEvents(pb.AppendRunEventsRequest(run=run.name, events=events))
    got = stub.ListRunEvents(pb.ListRunEventsRequest(run=run.name)).events
    assert [e.WhichOneof("payload") for e in got] == [
        "metrics",
        "state_change",
        "log",
        "checkpoint_saved",
    ]
    for sent, stored in zip(events, got, strict=True):
        kind = sent.WhichOneof("payload")
        assert getattr(stored, kind) == getattr(sent, kind)
        assert stored.step == sent.step
        assert stored.HasField("time")  # the server stamps events sent without a time
    assert got[2].time.seconds == 1_700_000_000


def test_list_events_from_a_sequence_in_contiguous_pages(stub: Stub) -> None:
    run = create_run(stub)
    append(stub, run.name, list(range(1, 26)))
    seen: list[int] = []
    token = ""
    while True:
        page = stub.ListRunEvents(
            pb.ListRunEventsRequest(run=run.name, from_sequence=4, page_size=5, page_token=token)
        )
        assert page.last_sequence == 25
        assert len(page.events) <= 5
        seen.extend(e.sequence for e in page.events)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(4, 26))
    beyond = stub.ListRunEvents(pb.ListRunEventsRequest(run=run.name, from_sequence=26))
    assert (list(beyond.events), beyond.next_page_token, beyond.last_sequence) == ([], "", 25)


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([], "events"),
        ([run_pb2.RunEvent(sequence=0, log=run_pb2.LogLine(message="x"))], "events[0].sequence"),
        ([run_pb2.RunEvent(sequence=-3, log=run_pb2.LogLine(message="x"))], "events[0].sequence"),
        ([metrics_event(1), run_pb2.RunEvent(sequence=2)], "events[1].payload"),
    ],
)
def test_bad_events_are_invalid(stub: Stub, events: list[run_pb2.RunEvent], field: str) -> None:
    run = create_run(stub)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.AppendRunEvents(pb.AppendRunEventsRequest(run=run.name, events=events)),
    )
    assert bad_request_fields(err) == [field]
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run.last_sequence == 0


def test_negative_from_sequence_is_invalid(stub: Stub) -> None:
    run = create_run(stub)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListRunEvents(pb.ListRunEventsRequest(run=run.name, from_sequence=-1)),
    )
    assert bad_request_fields(err) == ["from_sequence"]


# Checkpoints.


def checkpoint(stub: Stub, run: str, step: int, uri: str, **metrics: float) -> run_pb2.Checkpoint:
    cp: run_pb2.Checkpoint = stub.CreateCheckpoint(
        pb.CreateCheckpointRequest(
            run=run, checkpoint=run_pb2.Checkpoint(step=step, uri=uri, metrics=metrics)
        )
    ).checkpoint
    return cp


def test_checkpoints_create_list_and_upsert(stub: Stub) -> None:
    run = create_run(stub)
    first = checkpoint(stub, run.name, 100, "file:///ckpt/100", loss=0.9)
    assert first.name == f"{run.name}/checkpoints/100"
    assert first.create_time.seconds > 0
    checkpoint(stub, run.name, 200, "file:///ckpt/200", loss=0.7)
    checkpoint(stub, run.name, 50, "file:///ckpt/50")
    checkpoint(stub, run.name, 0, "file:///ckpt/0")
    replaced = checkpoint(stub, run.name, 100, "file:///ckpt/100-b", loss=0.8)
    assert (replaced.uri, dict(replaced.metrics)) == ("file:///ckpt/100-b", {"loss": 0.8})

    seen: list[run_pb2.Checkpoint] = []
    token = ""
    while True:
        page = stub.ListCheckpoints(
            pb.ListCheckpointsRequest(run=run.name, page_size=3, page_token=token)
        )
        seen.extend(page.checkpoints)
        token = page.next_page_token
        if not token:
            break
    assert [c.step for c in seen] == [0, 50, 100, 200]
    assert seen[2].uri == "file:///ckpt/100-b"
    assert seen[3].metrics["loss"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("checkpoint_message", "field"),
    [
        (run_pb2.Checkpoint(step=-1), "checkpoint.step"),
        (run_pb2.Checkpoint(step=1, metrics={"loss": float("nan")}), "checkpoint.metrics['loss']"),
        (run_pb2.Checkpoint(step=1, uri="a\x00b"), "checkpoint.uri"),
    ],
)
def test_bad_checkpoints_are_invalid(
    stub: Stub, checkpoint_message: run_pb2.Checkpoint, field: str
) -> None:
    run = create_run(stub)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateCheckpoint(
            pb.CreateCheckpointRequest(run=run.name, checkpoint=checkpoint_message)
        ),
    )
    assert bad_request_fields(err) == [field]
    assert list(stub.ListCheckpoints(pb.ListCheckpointsRequest(run=run.name)).checkpoints) == []


# Unknown runs.

UNKNOWN = "runs/" + "never-created"
CALLS: dict[str, Callable[[Stub], Any]] = {
    "GetRun": lambda s: s.GetRun(pb.GetRunRequest(name=UNKNOWN)),
    "TransitionRun": lambda s: s.TransitionRun(
        pb.TransitionRunRequest(name=UNKNOWN, state=RUNNING)
    ),
    "AppendRunEvents": lambda s: s.AppendRunEvents(
        pb.AppendRunEventsRequest(run=UNKNOWN, events=[metrics_event(1)])
    ),
    "ListRunEvents": lambda s: s.ListRunEvents(pb.ListRunEventsRequest(run=UNKNOWN)),
    "CreateCheckpoint": lambda s: s.CreateCheckpoint(
        pb.CreateCheckpointRequest(run=UNKNOWN, checkpoint=run_pb2.Checkpoint(step=1))
    ),
    "ListCheckpoints": lambda s: s.ListCheckpoints(pb.ListCheckpointsRequest(run=UNKNOWN)),
}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_unknown_run_is_not_found(stub: Stub, method: str) -> None:
    err = rpc_error(grpc.StatusCode.NOT_FOUND, lambda: CALLS[method](stub))
    assert resource_info(err).resource_name == UNKNOWN


def test_concurrent_writes_to_one_run(stub: Stub) -> None:
    run_id = unique("run")
    outcomes = race(6, lambda _n: create_run(stub, run_id=run_id))
    assert outcomes == {"OK": 1, "ALREADY_EXISTS": 5}
    name = f"runs/{run_id}"
    # The same checkpoint step saved at once: one row, the last writer's uri.
    outcomes = race(6, lambda n: checkpoint(stub, name, 7, f"file:///ckpt/{n}"))
    assert outcomes == {"OK": 6}
    (saved,) = stub.ListCheckpoints(pb.ListCheckpointsRequest(run=name)).checkpoints
    assert saved.step == 7
    # The same event batch retried at once: stored once.
    counts: list[int] = []
    outcomes = race(6, lambda _n: counts.append(append(stub, name, [1, 2]).appended_count))
    assert outcomes == {"OK": 6}
    assert sorted(counts) == [0, 0, 0, 0, 0, 2]


def test_dataset_given_as_bare_id_is_stored_as_its_name(stub: Stub) -> None:
    trace = stub.CreateTrace(pb.CreateTraceRequest(trace=make_trace(source=unique()))).trace
    dataset_id = unique("ds")
    stub.CreateDataset(
        pb.CreateDatasetRequest(
            dataset_id=dataset_id, trace_names=pb.TraceNames(names=[trace.name])
        )
    )
    bare = create_run(stub, dataset=dataset_id)
    full = create_run(stub, dataset=f"datasets/{dataset_id}")
    assert bare.dataset == full.dataset == f"datasets/{dataset_id}"
    for query in (dataset_id, f"datasets/{dataset_id}"):
        listed = stub.ListRuns(pb.ListRunsRequest(dataset=query)).runs
        assert [r.name for r in listed] == [bare.name, full.name]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.ListRuns(pb.ListRunsRequest(dataset="a/b"))
    )
    assert bad_request_fields(err) == ["dataset"]
