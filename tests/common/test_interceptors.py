"""Errors → statuses with details, aborts passed through, request ids and the per-RPC log line,
through a real server and a real client, for every RPC kind."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from tunix_rt.common.server import RunningServer

from . import probe
from .conftest import StartServer

INTERNAL_MESSAGE = re.compile(r"^internal error \(id=([0-9a-f]{32})\)$")
DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.ResourceInfo,
)


@pytest.fixture
def server(serve: StartServer) -> RunningServer:
    return serve()


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def failure(channel: grpc.Channel, kind: str, command: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        probe.call(channel, kind, command, timeout=10)
    return caught.value


def details(error: grpc.RpcError) -> dict[str, Message]:
    """The google.rpc.Status details of a failed call, by message type name."""
    status: status_pb2.Status | None = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailing metadata"
    found: dict[str, Message] = {}
    for packed in status.details:
        for detail_type in DETAIL_TYPES:
            if packed.Is(detail_type.DESCRIPTOR):
                message = detail_type()
                packed.Unpack(message)
                found[detail_type.__name__] = message
    return found


@pytest.mark.parametrize("kind", [*probe.KINDS, "UnaryStreamWriter"])
def test_success_passes_through(channel: grpc.Channel, kind: str) -> None:
    responses = probe.call(channel, kind, b"ok", timeout=10)
    assert responses[-1] == b"ok"


@pytest.mark.parametrize("kind", [*probe.KINDS, "UnaryStreamWriter"])
def test_invalid_argument_names_the_field(channel: grpc.Channel, kind: str) -> None:
    error = failure(channel, kind, b"invalid")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "trace.prompt: must not be empty"
    found = details(error)
    bad_request = found["BadRequest"]
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("trace.prompt", "must not be empty")
    ]
    info = found["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "tunix-rt")


@pytest.mark.parametrize("kind", probe.KINDS)
@pytest.mark.parametrize(
    ("command", "code", "resource"),
    [
        (b"not_found", grpc.StatusCode.NOT_FOUND, ("model", "models/m1")),
        (b"exists", grpc.StatusCode.ALREADY_EXISTS, ("dataset", "datasets/d1")),
    ],
)
def test_missing_or_existing_resource_is_described(
    channel: grpc.Channel,
    kind: str,
    command: bytes,
    code: grpc.StatusCode,
    resource: tuple[str, str],
) -> None:
    error = failure(channel, kind, command)
    assert error.code() == code
    info = details(error)["ResourceInfo"]
    assert isinstance(info, error_details_pb2.ResourceInfo)
    assert (info.resource_type, info.resource_name) == resource


def test_other_domain_errors_carry_error_info(channel: grpc.Channel) -> None:
    error = failure(channel, "UnaryUnary", b"precondition")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "job already finished"
    info = details(error)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "JOB_FINISHED"
    assert info.domain == "tunix-rt"
    assert dict(info.metadata) == {"job": "jobs/j1"}


@pytest.mark.parametrize("kind", [*probe.KINDS, "UnaryStreamWriter", "SyncUnary"])
def test_unexpected_exception_is_internal_without_internals(
    channel: grpc.Channel, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tunix_rt.rpc")
    error = failure(channel, kind, b"boom")
    assert error.code() == grpc.StatusCode.INTERNAL
    match = INTERNAL_MESSAGE.match(error.details() or "")
    assert match, error.details()
    error_id = match.group(1)
    # Nothing about the exception travels: not in the message, not in any trailing metadata.
    trailers = b"".join(
        value if isinstance(value, bytes) else value.encode()
        for _, value in error.trailing_metadata() or ()
    )
    for leak in (probe.SECRET, "RuntimeError", "Traceback", "probe.py"):
        assert leak not in (error.details() or "")
        assert leak.encode() not in trailers
    info = details(error)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert dict(info.metadata) == {"error_id": error_id}
    # ... but the server log has the traceback under the same id.
    records = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert probe.SECRET in str(record.exc_info[1])
    assert getattr(record, "code", None) == "INTERNAL"


@pytest.mark.parametrize("kind", [*probe.KINDS, "UnaryStreamWriter"])
def test_abort_passes_through_unchanged(channel: grpc.Channel, kind: str) -> None:
    error = failure(channel, kind, b"abort")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "custom abort"
    assert rpc_status.from_call(error) is None  # no details were added on the way out


@pytest.mark.parametrize("kind", ["UnaryUnary", "SyncUnary", "UnaryStream"])
def test_not_implemented_error_is_unimplemented(channel: grpc.Channel, kind: str) -> None:
    error = failure(channel, kind, b"unimplemented")
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.details() == f"{probe.method(kind)} is not implemented"


def test_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(probe.method("Nope"))(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_request_id_from_metadata_reaches_handler_and_log(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tunix_rt.rpc")
    (seen,) = probe.call(
        channel, "UnaryUnary", b"request_id", metadata=[("x-request-id", "req-42")], timeout=10
    )
    assert seen == b"req-42"
    (record,) = [r for r in caplog.records if r.getMessage() == "rpc"]
    assert getattr(record, "method", None) == probe.method("UnaryUnary")
    assert getattr(record, "code", None) == "OK"
    assert isinstance(getattr(record, "duration_ms", None), float)


def test_request_id_is_generated_when_absent_or_unsafe(channel: grpc.Channel) -> None:
    (generated,) = probe.call(channel, "UnaryUnary", b"request_id", timeout=10)
    assert re.fullmatch(rb"[0-9a-f]{32}", generated)
    (replaced,) = probe.call(
        channel,
        "UnaryUnary",
        b"request_id",
        metadata=[("x-request-id", "bad id; " + "x" * 100)],
        timeout=10,
    )
    assert re.fullmatch(rb"[0-9a-f]{32}", replaced)
    assert replaced != generated


@pytest.mark.parametrize("kind", [*probe.KINDS, "UnaryStreamWriter"])
@pytest.mark.parametrize("value", ["x" * 20_000, "é" * 20_000, "'\"" * 10_000])
def test_huge_bad_value_is_invalid_argument_with_a_short_message(
    channel: grpc.Channel, kind: str, value: str
) -> None:
    # Echoed whole, the value would push the trailers past gRPC's metadata limit and the caller
    # would see RESOURCE_EXHAUSTED instead of the status.
    error = failure(channel, kind, b"bad_id:" + value.encode())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    message = error.details() or ""
    assert message.startswith("model_id: ")
    assert len(message.encode()) <= 512
    bad_request = details(error)["BadRequest"]
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert [v.field for v in bad_request.field_violations] == ["model_id"]
    trailers = sum(len(k) + len(v) for k, v in error.trailing_metadata() or ())
    assert trailers < 4096


def test_huge_resource_name_is_not_found_with_a_short_message(channel: grpc.Channel) -> None:
    error = failure(channel, "UnaryUnary", b"no_model:" + b"m" * 20_000)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (error.details() or "").startswith("model 'mmmm")
    assert "(20000 characters) not found" in (error.details() or "")
    info = details(error)["ResourceInfo"]
    assert isinstance(info, error_details_pb2.ResourceInfo)
    assert info.resource_type == "model"
    assert len(info.resource_name) <= 256
