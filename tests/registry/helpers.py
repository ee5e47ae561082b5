"""Small helpers shared by the registry tests: trace builders, test data files, error details."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc, trace_pb2

Stub = registry_service_pb2_grpc.RegistryServiceStub

ROOT = Path(__file__).resolve().parents[2]
# The shipped training set (2,000 traces in the generator's format), for tests that need size.
SHIPPED_TRACES = ROOT / "datasets" / "reasoning-train-v1.jsonl"
# The shipped eval set, in the eval-set file format (datasets/README.md).
SHIPPED_EVAL_SET = ROOT / "datasets" / "reasoning-evalset-v1.jsonl"
# Small files in the original tunix-rt's formats (tests/fixtures/README.md says what each holds).
FIXTURES = ROOT / "tests" / "fixtures"
DEV_V2_FIXTURE = FIXTURES / "traces-dev-reasoning-v2.jsonl"
SELF_CORRECT_FIXTURE = FIXTURES / "traces-self-correct.jsonl"
E2E_FIXTURE = FIXTURES / "traces-e2e-ingest.jsonl"
EVAL_SET_V2_FIXTURE = FIXTURES / "evalset-v2.jsonl"


def unique(prefix: str = "t") -> str:
    """A fresh id: the server is shared by a module's tests, so each test names its own data."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The non-blank JSONL rows of a file, parsed."""
    with path.open("rb") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def make_trace(**overrides: Any) -> trace_pb2.Trace:
    """A valid Trace message; keyword arguments replace fields (`meta` may be a plain dict,
    `steps` a list of (i, type, content) tuples or TraceStep messages)."""
    fields: dict[str, Any] = {
        "trace_version": "1.0",
        "prompt": "What is 2 + 3?",
        "steps": [(0, "setup", "Add 2 and 3"), (1, "calculation", "2 + 3 = 5")],
        "final_answer": "5",
        "meta": {"category": "reasoning", "index": 1},
    }
    fields.update(overrides)
    steps = [
        s
        if isinstance(s, trace_pb2.TraceStep)
        else trace_pb2.TraceStep(i=s[0], type=s[1], content=s[2])
        for s in fields.pop("steps")
    ]
    meta = fields.pop("meta")
    if isinstance(meta, dict):
        meta = struct(meta)
    return trace_pb2.Trace(steps=steps, meta=meta, **fields)


def trace_row(trace: trace_pb2.Trace) -> dict[str, Any]:
    """A stored trace as a JSONL row (integral numbers as ints, like the file)."""

    def normal(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normal(v) for v in value]
        return value

    return {
        "trace_version": trace.trace_version,
        "prompt": trace.prompt,
        "final_answer": trace.final_answer,
        "steps": [{"i": s.i, "type": s.type, "content": s.content} for s in trace.steps],
        "meta": normal(json_format.MessageToDict(trace.meta)),
    }


def jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def row(**overrides: Any) -> dict[str, Any]:
    """A valid JSONL trace row with fields replaced."""
    base: dict[str, Any] = {
        "trace_version": "1.0",
        "prompt": "What is 4 * 5?",
        "final_answer": "20",
        "steps": [{"i": 0, "type": "calculation", "content": "4 * 5 = 20"}],
        "meta": {"category": "reasoning"},
    }
    base.update(overrides)
    return base


def import_requests(
    data: bytes,
    *,
    source: str,
    atomic: bool = False,
    chunk: int | None = None,
    request_id: str = "",
) -> Iterator[pb.ImportTracesRequest]:
    """An ImportTraces stream: options first, then `data` in `chunk`-byte pieces (one if None)."""
    yield pb.ImportTracesRequest(
        options=pb.ImportOptions(atomic=atomic, source=source, request_id=request_id)
    )
    size = chunk or max(1, len(data))
    for start in range(0, len(data), size):
        yield pb.ImportTracesRequest(data=data[start : start + size])


def import_data(
    stub: Stub, data: bytes, *, source: str, atomic: bool = False, chunk: int | None = None
) -> pb.ImportTracesResponse:
    response: pb.ImportTracesResponse = stub.ImportTraces(
        import_requests(data, source=source, atomic=atomic, chunk=chunk)
    )
    return response


def list_all_traces(
    stub: Stub, flt: trace_pb2.TraceFilter, page_size: int = 1000
) -> list[trace_pb2.Trace]:
    """Every trace matching `flt`, following page tokens."""
    traces: list[trace_pb2.Trace] = []
    token = ""
    while True:
        page = stub.ListTraces(
            pb.ListTracesRequest(filter=flt, page_size=page_size, page_token=token)
        )
        traces.extend(page.traces)
        token = page.next_page_token
        if not token:
            return traces


def by_source(source: str) -> trace_pb2.TraceFilter:
    return trace_pb2.TraceFilter(source=source)


def rpc_status_of(err: grpc.RpcError) -> status_pb2.Status:
    status: status_pb2.Status | None = rpc_status.from_call(err)
    assert status is not None, f"no google.rpc.Status details on {err}"
    return status


def detail(err: grpc.RpcError, kind: type[Any]) -> Any:
    """The first detail of type `kind` (e.g. error_details_pb2.BadRequest) on an error."""
    for any_detail in rpc_status_of(err).details:
        message = kind()
        if any_detail.Unpack(message):
            return message
    raise AssertionError(f"no {kind.__name__} detail on {err.code()}: {err.details()}")


def bad_request_fields(err: grpc.RpcError) -> list[str]:
    """The fields named by the error's google.rpc.BadRequest (asserts INVALID_ARGUMENT)."""
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    bad: error_details_pb2.BadRequest = detail(err, error_details_pb2.BadRequest)
    return [v.field for v in bad.field_violations]


def resource_info(err: grpc.RpcError) -> error_details_pb2.ResourceInfo:
    info: error_details_pb2.ResourceInfo = detail(err, error_details_pb2.ResourceInfo)
    return info


def error_reason(err: grpc.RpcError) -> str:
    info: error_details_pb2.ErrorInfo = detail(err, error_details_pb2.ErrorInfo)
    return str(info.reason)


def rpc_error(code: grpc.StatusCode, call: Callable[[], Any]) -> grpc.RpcError:
    """Runs `call` (consume streams inside it) and returns the RpcError it raised with `code`."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    err: grpc.RpcError = caught.value
    assert err.code() == code, (err.code(), err.details())
    return err


def race(count: int, call: Callable[[int], Any]) -> Counter[str]:
    """Runs `call(n)` on `count` threads released together; counts outcomes by status code name
    ("OK" for success), so a test can assert e.g. one OK and the rest ALREADY_EXISTS."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        barrier.wait(timeout=30)
        try:
            call(n)
            outcome = "OK"
        except grpc.RpcError as err:
            outcome = err.code().name
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes
