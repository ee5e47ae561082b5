"""Traces through the real server: create, batch create, get, list with filters and pages, delete,
every limit of the seed README, and request_id idempotency."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tests.registry.helpers import (
    Stub,
    bad_request_fields,
    by_source,
    error_reason,
    list_all_traces,
    make_trace,
    resource_info,
    rpc_error,
    unique,
)
from tests.support import LoopThread
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc, trace_pb2

NAME = re.compile(r"^traces/[0-9a-f]{32}$")


def create(stub: Stub, **overrides: Any) -> trace_pb2.Trace:
    trace: trace_pb2.Trace = stub.CreateTrace(
        pb.CreateTraceRequest(trace=make_trace(**overrides))
    ).trace
    return trace


def test_create_trace_stores_and_returns_it(stub: Stub) -> None:
    source = unique("create")
    sent = make_trace(source=source, meta={"category": "reasoning", "index": 13, "ok": True})
    stored = stub.CreateTrace(pb.CreateTraceRequest(trace=sent)).trace
    assert NAME.match(stored.name)
    assert re.fullmatch(r"[0-9a-f]{64}", stored.content_hash)
    assert stored.create_time.seconds > 0
    for field in ("trace_version", "prompt", "final_answer", "source"):
        assert getattr(stored, field) == getattr(sent, field)
    assert list(stored.steps) == list(sent.steps)
    assert dict(stored.meta) == {"category": "reasoning", "index": 13.0, "ok": True}
    assert stub.GetTrace(pb.GetTraceRequest(name=stored.name)).trace == stored


def test_output_only_fields_are_ignored(stub: Stub) -> None:
    source = unique("outonly")
    sent = make_trace(source=source, name="traces/" + "0" * 32, content_hash="x" * 64)
    sent.create_time.FromSeconds(1)
    stored = stub.CreateTrace(pb.CreateTraceRequest(trace=sent)).trace
    assert stored.name != sent.name
    assert stored.content_hash != sent.content_hash
    assert stored.create_time.seconds > 1


def test_same_content_hashes_alike_and_other_content_differently(stub: Stub) -> None:
    a = create(stub, source=unique("hash"))
    b = create(stub, source=unique("hash"))  # the source is not content
    c = create(stub, source=unique("hash"), final_answer="6")
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.name != b.name


def test_batch_create_stores_every_trace_in_order(stub: Stub) -> None:
    source = unique("batch")
    traces = [make_trace(source=source, prompt=f"question {n}") for n in range(5)]
    stored = stub.BatchCreateTraces(pb.BatchCreateTracesRequest(traces=traces)).traces
    assert [t.prompt for t in stored] == [f"question {n}" for n in range(5)]
    assert len({t.name for t in stored}) == 5
    listed = list_all_traces(stub, by_source(source))
    assert [t.name for t in listed] == [t.name for t in stored]


def test_batch_create_is_all_or_nothing(stub: Stub) -> None:
    source = unique("batchbad")
    traces = [
        make_trace(source=source),
        make_trace(source=source, steps=[(0, "setup", "")]),
        make_trace(source=source),
    ]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.BatchCreateTraces(pb.BatchCreateTracesRequest(traces=traces)),
    )
    assert bad_request_fields(err) == ["traces[1].steps[0].content"]
    assert "traces[1].steps[0].content" in (err.details() or "")
    assert list_all_traces(stub, by_source(source)) == []


def test_batch_create_names_every_bad_trace(stub: Stub) -> None:
    source = unique("batchbad2")
    traces = [
        make_trace(source=source, prompt=""),
        make_trace(source=source),
        make_trace(source=source, steps=[(0, "x" * 65, "c")]),
    ]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.BatchCreateTraces(pb.BatchCreateTracesRequest(traces=traces)),
    )
    # Validation stops at the first bad trace; it is named precisely.
    assert bad_request_fields(err)[0] == "traces[0].prompt"
    assert list_all_traces(stub, by_source(source)) == []


def test_batch_create_needs_a_trace(stub: Stub) -> None:
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.BatchCreateTraces(pb.BatchCreateTracesRequest()),
    )
    assert bad_request_fields(err) == ["traces"]


def test_get_unknown_trace_is_not_found(stub: Stub) -> None:
    name = "traces/" + "a" * 32
    err = rpc_error(grpc.StatusCode.NOT_FOUND, lambda: stub.GetTrace(pb.GetTraceRequest(name=name)))
    assert resource_info(err).resource_name == name


@pytest.mark.parametrize("name", ["", "traces/", "traces/xyz", "traces/" + "A" * 32, "runs/x"])
def test_get_malformed_trace_name_is_invalid(stub: Stub, name: str) -> None:
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.GetTrace(pb.GetTraceRequest(name=name))
    )
    assert bad_request_fields(err) == ["name"]


# Listing.


def test_list_filters_by_source(stub: Stub) -> None:
    mine, other = unique("src"), unique("src")
    a = create(stub, source=mine)
    create(stub, source=other)
    b = create(stub, source=mine)
    assert [t.name for t in list_all_traces(stub, by_source(mine))] == [a.name, b.name]


def test_list_filters_by_meta_text_and_numbers(stub: Stub) -> None:
    source = unique("meta")
    t13 = create(stub, source=source, meta={"index": 13, "category": "synthetic", "ok": True})
    t14 = create(stub, source=source, meta={"index": 14, "category": "synthetic", "ok": False})
    t_float = create(stub, source=source, meta={"index": 31.5, "category": "reasoning"})

    def names(*conditions: tuple[str, str]) -> list[str]:
        flt = trace_pb2.TraceFilter(
            source=source, meta=[trace_pb2.MetaCondition(key=k, value=v) for k, v in conditions]
        )
        return [t.name for t in list_all_traces(stub, flt)]

    assert names(("index", "13")) == [t13.name]
    assert names(("index", "31.5")) == [t_float.name]
    assert names(("category", "synthetic")) == [t13.name, t14.name]
    assert names(("category", "synthetic"), ("index", "14")) == [t14.name]  # conditions AND
    assert names(("ok", "true")) == [t13.name]
    assert names(("ok", "false")) == [t14.name]
    assert names(("index", "15")) == []
    assert names(("missing", "13")) == []


def test_list_filters_by_create_time_window(stub: Stub) -> None:
    source = unique("window")
    first = create(stub, source=source)
    time.sleep(0.01)
    second = create(stub, source=source)
    time.sleep(0.01)
    third = create(stub, source=source)

    def window(
        after: timestamp_pb2.Timestamp | None, before: timestamp_pb2.Timestamp | None
    ) -> list[str]:
        flt = trace_pb2.TraceFilter(
            source=source, create_time_after=after, create_time_before=before
        )
        return [t.name for t in list_all_traces(stub, flt)]

    # `after` is inclusive, `before` exclusive.
    assert window(second.create_time, None) == [second.name, third.name]
    assert window(None, second.create_time) == [first.name]
    assert window(first.create_time, third.create_time) == [first.name, second.name]
    assert window(third.create_time, first.create_time) == []


def test_pagination_visits_every_trace_once(stub: Stub) -> None:
    source = unique("pages")
    traces = [make_trace(source=source, prompt=f"q{n}") for n in range(23)]
    stored = stub.BatchCreateTraces(pb.BatchCreateTracesRequest(traces=traces)).traces
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        response = stub.ListTraces(
            pb.ListTracesRequest(filter=by_source(source), page_size=5, page_token=token)
        )
        assert len(response.traces) <= 5
        seen.extend(t.name for t in response.traces)
        pages += 1
        token = response.next_page_token
        if not token:
            break
    assert pages == 5
    assert seen == [t.name for t in stored]  # oldest first, no duplicates, none missing


def test_page_size_is_clamped_not_refused(stub: Stub) -> None:
    source = unique("clamp")
    create(stub, source=source)
    response = stub.ListTraces(pb.ListTracesRequest(filter=by_source(source), page_size=10**9))
    assert len(response.traces) == 1
    assert response.next_page_token == ""


def test_negative_page_size_is_invalid(stub: Stub) -> None:
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListTraces(pb.ListTracesRequest(page_size=-1)),
    )
    assert bad_request_fields(err) == ["page_size"]


@pytest.mark.parametrize("token", ["garbage", "!!!", "eyJwIjogMX0", "bnVsbA", "W10"])
def test_bad_page_token_is_invalid(stub: Stub, token: str) -> None:
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListTraces(pb.ListTracesRequest(page_token=token)),
    )
    assert bad_request_fields(err) == ["page_token"]


def test_page_token_reused_with_another_filter_is_invalid(stub: Stub) -> None:
    source = unique("reuse")
    stub.BatchCreateTraces(
        pb.BatchCreateTracesRequest(traces=[make_trace(source=source) for _ in range(3)])
    )
    first = stub.ListTraces(pb.ListTracesRequest(filter=by_source(source), page_size=1))
    assert first.next_page_token
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListTraces(
            pb.ListTracesRequest(
                filter=by_source(unique("other")), page_size=1, page_token=first.next_page_token
            )
        ),
    )
    assert bad_request_fields(err) == ["page_token"]


# Delete.


def test_delete_trace(stub: Stub) -> None:
    source = unique("delete")
    keep = create(stub, source=source)
    gone = create(stub, source=source)
    stub.DeleteTrace(pb.DeleteTraceRequest(name=gone.name))
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: stub.GetTrace(pb.GetTraceRequest(name=gone.name)))
    rpc_error(
        grpc.StatusCode.NOT_FOUND, lambda: stub.DeleteTrace(pb.DeleteTraceRequest(name=gone.name))
    )
    assert [t.name for t in list_all_traces(stub, by_source(source))] == [keep.name]
    # Filtering by meta no longer finds the deleted one either.
    flt = trace_pb2.TraceFilter(
        source=source, meta=[trace_pb2.MetaCondition(key="index", value="1")]
    )
    assert [t.name for t in list_all_traces(stub, flt)] == [keep.name]


def test_a_trace_deleted_through_another_replica_is_not_served_again(
    registry_server: RunningRegistry, stub: Stub, tmp_path: Path
) -> None:
    """GetTrace keeps the responses it built (trace_responses); a second registry on the same
    database deletes the trace, and this one stops serving it at once."""
    trace = create(stub, source=unique("replica"))
    request = pb.GetTraceRequest(name=trace.name)
    assert stub.GetTrace(request).trace == trace
    assert stub.GetTrace(request).trace == trace  # the kept response
    loop = LoopThread()
    url = registry_server.registry.repo.url
    other = loop.run(start_registry(data_dir=tmp_path, database_url=url))
    try:
        with grpc.insecure_channel(other.address) as channel:
            replica: Any = registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
            assert replica.GetTrace(request).trace == trace
            replica.DeleteTrace(pb.DeleteTraceRequest(name=trace.name))
        rpc_error(grpc.StatusCode.NOT_FOUND, lambda: stub.GetTrace(request))
    finally:
        loop.run(other.stop(0))
        loop.close()


def test_delete_trace_in_a_dataset_is_refused(stub: Stub) -> None:
    trace = create(stub, source=unique("member"))
    dataset_id = unique("ds")
    stub.CreateDataset(
        pb.CreateDatasetRequest(
            dataset_id=dataset_id, trace_names=pb.TraceNames(names=[trace.name])
        )
    )
    err = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stub.DeleteTrace(pb.DeleteTraceRequest(name=trace.name)),
    )
    assert error_reason(err) == "TRACE_IN_DATASET"
    assert dataset_id in (err.details() or "")
    assert stub.GetTrace(pb.GetTraceRequest(name=trace.name)).trace == trace
    # Once the dataset is gone, the trace can go.
    stub.DeleteDataset(pb.DeleteDatasetRequest(name=f"datasets/{dataset_id}"))
    stub.DeleteTrace(pb.DeleteTraceRequest(name=trace.name))


# Limits (datasets/README.md): each bad trace is INVALID_ARGUMENT naming the field, nothing stored.

BIG_STEPS = [(n, "calculation", "x" * 19_000) for n in range(56)]  # about 1.06 MB of JSON

BAD_TRACES: list[tuple[str, dict[str, Any], str]] = [
    ("no trace_version", {"trace_version": ""}, "trace.trace_version"),
    ("trace_version 65 chars", {"trace_version": "v" * 65}, "trace.trace_version"),
    ("no prompt", {"prompt": ""}, "trace.prompt"),
    ("prompt 50,001 chars", {"prompt": "p" * 50_001}, "trace.prompt"),
    ("no final_answer", {"final_answer": ""}, "trace.final_answer"),
    ("final_answer 50,001 chars", {"final_answer": "a" * 50_001}, "trace.final_answer"),
    ("0 steps", {"steps": []}, "trace.steps"),
    ("1,001 steps", {"steps": [(n, "s", "c") for n in range(1001)]}, "trace.steps"),
    ("duplicate i", {"steps": [(0, "s", "a"), (0, "s", "b")]}, "trace.steps[1].i"),
    ("negative i", {"steps": [(-1, "s", "a")]}, "trace.steps[0].i"),
    ("no step type", {"steps": [(0, "", "a")]}, "trace.steps[0].type"),
    ("type 65 chars", {"steps": [(0, "t" * 65, "a")]}, "trace.steps[0].type"),
    ("no content", {"steps": [(0, "s", "")]}, "trace.steps[0].content"),
    ("content 20,001 chars", {"steps": [(0, "s", "c" * 20_001)]}, "trace.steps[0].content"),
    ("over 1 MiB in all", {"prompt": "p" * 50_000, "steps": BIG_STEPS}, "trace"),
    ("source 257 chars", {"source": "s" * 257}, "trace.source"),
    ("NUL in prompt", {"prompt": "a\x00b"}, "trace.prompt"),
    ("NUL in step content", {"steps": [(0, "s", "a\x00")]}, "trace.steps[0].content"),
    ("NUL in a meta value", {"meta": {"k": "a\x00b"}}, "trace.meta.k"),
]


@pytest.mark.parametrize(
    ("overrides", "field"), [pytest.param(o, f, id=i) for i, o, f in BAD_TRACES]
)
def test_trace_limits(stub: Stub, overrides: dict[str, Any], field: str) -> None:
    source = unique("limit")
    overrides = {"source": source, **overrides}
    request = pb.CreateTraceRequest(trace=make_trace(**overrides))
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateTrace(request))
    assert bad_request_fields(err) == [field]
    if field != "trace.source":
        assert list_all_traces(stub, by_source(source)) == []


def test_nan_in_meta_is_invalid(stub: Stub) -> None:
    source = unique("nan")
    trace = make_trace(source=source, meta={"score": float("nan")})
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateTrace(pb.CreateTraceRequest(trace=trace)),
    )
    assert bad_request_fields(err) == ["trace.meta"]
    assert list_all_traces(stub, by_source(source)) == []


def test_every_bad_field_of_a_trace_is_named(stub: Stub) -> None:
    trace = make_trace(prompt="", steps=[(0, "t" * 65, ""), (0, "s", "c")])
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateTrace(pb.CreateTraceRequest(trace=trace)),
    )
    assert sorted(bad_request_fields(err)) == [
        "trace.prompt",
        "trace.steps[0].content",
        "trace.steps[0].type",
        "trace.steps[1].i",
    ]


AT_LIMITS: list[tuple[str, dict[str, Any]]] = [
    ("trace_version 64 chars", {"trace_version": "v" * 64}),
    ("prompt 50,000 chars", {"prompt": "p" * 50_000}),
    ("final_answer 50,000 chars", {"final_answer": "a" * 50_000}),
    ("1 step", {"steps": [(0, "s", "c")]}),
    ("1,000 steps", {"steps": [(n, "s", "c") for n in range(1000)]}),
    ("i 0 and unordered", {"steps": [(5, "s", "a"), (0, "s", "b")]}),
    ("type 64 chars", {"steps": [(0, "t" * 64, "c")]}),
    ("content 20,000 chars", {"steps": [(0, "s", "c" * 20_000)]}),
    ("non-ASCII text", {"prompt": "Wie viel ist 6 ÷ 3? 🤔", "final_answer": "2 ✓"}),
]


@pytest.mark.parametrize("overrides", [pytest.param(o, id=i) for i, o in AT_LIMITS])
def test_traces_at_the_limits_are_stored_unchanged(stub: Stub, overrides: dict[str, Any]) -> None:
    sent = make_trace(source=unique("atlimit"), **overrides)
    stored = stub.CreateTrace(pb.CreateTraceRequest(trace=sent)).trace
    got = stub.GetTrace(pb.GetTraceRequest(name=stored.name)).trace
    assert got.prompt == sent.prompt
    assert got.final_answer == sent.final_answer
    assert got.trace_version == sent.trace_version
    assert list(got.steps) == list(sent.steps)


# Idempotency.


def test_create_with_request_id_is_idempotent(stub: Stub) -> None:
    source = unique("idem")
    request = pb.CreateTraceRequest(trace=make_trace(source=source), request_id=unique("req"))
    first = stub.CreateTrace(request).trace
    second = stub.CreateTrace(request).trace
    assert first == second
    assert len(list_all_traces(stub, by_source(source))) == 1


def test_request_id_reused_for_another_trace_is_invalid(stub: Stub) -> None:
    source = unique("idem2")
    request_id = unique("req")
    first = stub.CreateTrace(
        pb.CreateTraceRequest(trace=make_trace(source=source), request_id=request_id)
    ).trace
    other = pb.CreateTraceRequest(
        trace=make_trace(source=source, prompt="something else"), request_id=request_id
    )
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateTrace(other))
    assert bad_request_fields(err) == ["request_id"]
    assert [t.name for t in list_all_traces(stub, by_source(source))] == [first.name]


def test_batch_create_with_request_id_is_idempotent(stub: Stub) -> None:
    source = unique("idem3")
    request = pb.BatchCreateTracesRequest(
        traces=[make_trace(source=source, prompt=f"q{n}") for n in range(3)],
        request_id=unique("req"),
    )
    first = stub.BatchCreateTraces(request).traces
    second = stub.BatchCreateTraces(request).traces
    assert [t.name for t in first] == [t.name for t in second]
    assert len(list_all_traces(stub, by_source(source))) == 3


def test_batch_of_real_size_with_request_id_is_idempotent(stub: Stub) -> None:
    # Issue 10, finding 1: the request_id record holds every trace of the batch; at 8+ traces it
    # outgrew a VARCHAR(256) column, which PostgreSQL enforces (INTERNAL) and SQLite does not.
    source = unique("idembig")
    request = pb.BatchCreateTracesRequest(
        traces=[make_trace(source=source, prompt=f"q{n}") for n in range(600)],
        request_id=unique("req"),
    )
    first = [t.name for t in stub.BatchCreateTraces(request).traces]
    assert len(set(first)) == 600
    again = [t.name for t in stub.BatchCreateTraces(request).traces]
    assert again == first
    assert [t.name for t in list_all_traces(stub, by_source(source))] == first


def test_request_id_too_long_is_invalid(stub: Stub) -> None:
    request = pb.CreateTraceRequest(trace=make_trace(source=unique("idem4")), request_id="r" * 129)
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateTrace(request))
    assert bad_request_fields(err) == ["request_id"]
