"""Malformed input on the wire, through the real server: timestamps outside the range of
google.protobuf.Timestamp, and client-stream messages that do not decode. Each is INVALID_ARGUMENT
(naming the field where there is one) and stores nothing; both were INTERNAL (issue 10, finding 4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tests.registry.helpers import Stub, bad_request_fields, make_trace, rpc_error, unique
from tunix_rt.registry.server import RunningRegistry
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import run_pb2, trace_pb2

# Timestamps that no datetime holds: seconds outside 0001-01-01..9999-12-31 (the last valid second
# is 253402300799), or nanos outside [0, 1e9).
BAD_STAMPS = {
    "year 10000": timestamp_pb2.Timestamp(seconds=253402300800),
    "before year 1": timestamp_pb2.Timestamp(seconds=-62135596801),
    "negative nanos": timestamp_pb2.Timestamp(seconds=0, nanos=-1),
    "nanos of a second": timestamp_pb2.Timestamp(seconds=0, nanos=10**9),
}
TIMED: dict[str, tuple[str, Callable[[Stub, str, timestamp_pb2.Timestamp], Any]]] = {
    "ListTraces after": (
        "filter.create_time_after",
        lambda s, r, t: s.ListTraces(
            pb.ListTracesRequest(filter=trace_pb2.TraceFilter(create_time_after=t))
        ),
    ),
    "ListTraces before": (
        "filter.create_time_before",
        lambda s, r, t: s.ListTraces(
            pb.ListTracesRequest(filter=trace_pb2.TraceFilter(create_time_before=t))
        ),
    ),
    "CreateDataset filter": (
        "filter.create_time_after",
        lambda s, r, t: s.CreateDataset(
            pb.CreateDatasetRequest(
                dataset_id=unique("ds"), filter=trace_pb2.TraceFilter(create_time_after=t)
            )
        ),
    ),
    "AppendRunEvents": (
        "events[1].time",
        lambda s, r, t: s.AppendRunEvents(
            pb.AppendRunEventsRequest(
                run=r,
                events=[
                    run_pb2.RunEvent(sequence=1, log=run_pb2.LogLine(message="x")),
                    run_pb2.RunEvent(sequence=2, time=t, log=run_pb2.LogLine(message="y")),
                ],
            )
        ),
    ),
    "CreateCheckpoint": (
        "checkpoint.create_time",
        lambda s, r, t: s.CreateCheckpoint(
            pb.CreateCheckpointRequest(run=r, checkpoint=run_pb2.Checkpoint(step=7, create_time=t))
        ),
    ),
}


@pytest.mark.parametrize("stamp", sorted(BAD_STAMPS))
@pytest.mark.parametrize("case", sorted(TIMED))
def test_out_of_range_timestamps_are_invalid(stub: Stub, case: str, stamp: str) -> None:
    field, call = TIMED[case]
    run = stub.CreateRun(pb.CreateRunRequest(run=run_pb2.Run())).run
    datasets = len(stub.ListDatasets(pb.ListDatasetsRequest(page_size=1000)).datasets)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: call(stub, run.name, BAD_STAMPS[stamp])
    )
    assert bad_request_fields(err) == [field]
    assert stub.GetRun(pb.GetRunRequest(name=run.name)).run == run
    assert not stub.ListCheckpoints(pb.ListCheckpointsRequest(run=run.name)).checkpoints
    assert len(stub.ListDatasets(pb.ListDatasetsRequest(page_size=1000)).datasets) == datasets


def test_timestamps_at_the_ends_of_the_range_are_stored(stub: Stub) -> None:
    run = stub.CreateRun(pb.CreateRunRequest(run=run_pb2.Run())).run.name
    first = timestamp_pb2.Timestamp(seconds=-62135596800)
    last = timestamp_pb2.Timestamp(seconds=253402300799, nanos=999_999_000)
    stub.AppendRunEvents(
        pb.AppendRunEventsRequest(
            run=run,
            events=[
                run_pb2.RunEvent(sequence=1, time=first, log=run_pb2.LogLine(message="a")),
                run_pb2.RunEvent(sequence=2, time=last, log=run_pb2.LogLine(message="b")),
            ],
        )
    )
    events = stub.ListRunEvents(pb.ListRunEventsRequest(run=run)).events
    assert [e.time for e in events] == [first, last]
    source = unique("window")
    stub.CreateTrace(pb.CreateTraceRequest(trace=make_trace(source=source)))
    window = trace_pb2.TraceFilter(source=source, create_time_after=first, create_time_before=last)
    assert stub.ListTraces(pb.ListTracesRequest(filter=window, page_size=1)).traces


def _stream_raw(server: RunningRegistry, method: str, messages: list[bytes]) -> Any:
    """Calls a client-streaming method with `messages` sent as they are, undecoded."""
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_unary(
            f"/tunix_rt.v1.RegistryService/{method}",
            request_serializer=None,
            response_deserializer=lambda raw: raw,
        )
        return call(iter(messages))


GARBAGE = b"\xff\xff\xff"
# An ImportOptions whose `source` is not UTF-8: protobuf refuses it as it parses.
BAD_UTF8_OPTIONS = b"\x0a\x05\x12\x03\xc3\x28a"


@pytest.mark.parametrize(("bad", "position"), [(GARBAGE, 2), (BAD_UTF8_OPTIONS, 0)])
def test_a_malformed_import_message_is_invalid_and_stores_nothing(
    registry_server: RunningRegistry, stub: Stub, bad: bytes, position: int
) -> None:
    # The shared interceptor parses each streamed message as the handler reads it.
    source = unique("rawimport")
    good = [
        pb.ImportTracesRequest(options=pb.ImportOptions(source=source)).SerializeToString(),
        pb.ImportTracesRequest(data=b'{"not": "checked yet"}\n').SerializeToString(),
        pb.ImportTracesRequest(data=b"").SerializeToString(),
    ]
    messages = [*good[:position], bad, *good[position:]]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: _stream_raw(registry_server, "ImportTraces", messages),
    )
    assert "ImportTracesRequest" in (err.details() or "")
    assert not stub.ListTraces(
        pb.ListTracesRequest(filter=trace_pb2.TraceFilter(source=source))
    ).traces


def test_a_malformed_upload_message_is_invalid_and_stores_nothing(
    registry_server: RunningRegistry, stub: Stub
) -> None:
    data = f"half an artifact {unique()}".encode()
    sha = hashlib.sha256(data).hexdigest()
    messages = [
        pb.UploadArtifactRequest(header=pb.ArtifactHeader(sha256=sha)).SerializeToString(),
        pb.UploadArtifactRequest(chunk=data).SerializeToString(),
        GARBAGE,
    ]
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: _stream_raw(registry_server, "UploadArtifact", messages),
    )
    assert "UploadArtifactRequest" in (err.details() or "")
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetArtifact(pb.GetArtifactRequest(name=f"artifacts/{sha}")),
    )
    blobs = registry_server.registry.blobs
    assert not blobs.exists(sha)
    assert list(blobs.tmp_dir.iterdir()) == []  # the partial upload was dropped
