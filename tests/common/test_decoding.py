"""Request bodies are parsed by the server's own wrapper: a body the message type refuses
(garbage, invalid UTF-8, nesting past the protobuf depth limit) is INVALID_ARGUMENT naming the
type, with no traceback logged, for every RPC kind and for each message of a request stream; with
auth on, a caller without the token is UNAUTHENTICATED before its body is parsed."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.protobuf import struct_pb2

from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import RunningServer, ServiceRegistration

from .conftest import StartServer

SERVICE = "tunix_rt.test.Parsed"
KINDS = ("UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream", "UnaryStreamWriter")
TOKEN = "s3cret-token"
# protobuf's default recursion limit is 100; 150 levels of Value → ListValue → Value is past it.
DEPTH_PAST_LIMIT = 150


class Parses:
    """Counts the bodies the Parsed service's deserializer was asked to parse."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, raw: bytes) -> struct_pb2.Value:
        with self._lock:
            self.count += 1
        return struct_pb2.Value.FromString(raw)


def registration(parses: Parses) -> ServiceRegistration:
    """A service whose methods take `google.protobuf.Value` and answer with the string_value(s)."""

    async def unary_unary(request: struct_pb2.Value, context: object) -> struct_pb2.Value:
        return request

    async def unary_stream(
        request: struct_pb2.Value, context: object
    ) -> AsyncIterator[struct_pb2.Value]:
        yield request

    async def stream_unary(
        requests: AsyncIterator[struct_pb2.Value], context: object
    ) -> struct_pb2.Value:
        texts = [request.string_value async for request in requests]
        return struct_pb2.Value(string_value=",".join(texts))

    async def stream_stream(
        requests: AsyncIterator[struct_pb2.Value], context: object
    ) -> AsyncIterator[struct_pb2.Value]:
        async for request in requests:
            yield request

    async def unary_stream_writer(
        request: struct_pb2.Value, context: grpc.aio.ServicerContext
    ) -> None:
        await context.write(request)

    serialize = struct_pb2.Value.SerializeToString
    handlers = {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary, parses, serialize),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream, parses, serialize),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary, parses, serialize),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream, parses, serialize),
        "UnaryStreamWriter": grpc.unary_stream_rpc_method_handler(
            unary_stream_writer, parses, serialize
        ),
    }
    generic = grpc.method_handlers_generic_handler(SERVICE, handlers)
    return ServiceRegistration(SERVICE, lambda server: server.add_generic_rpc_handlers([generic]))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def deep_value(depth: int) -> bytes:
    """A Value nested `depth` times: Value.list_value (field 6) → ListValue.values (field 1)."""
    body = b""
    for _ in range(depth):
        list_value = b"\x0a" + _varint(len(body)) + body
        body = b"\x32" + _varint(len(list_value)) + list_value
    return body


GOOD = struct_pb2.Value(string_value="fine").SerializeToString()
# (what the body is, the body, what the message says was wrong)
MALFORMED = [
    ("garbage", b"\xff\xff\xff\xff", "Wire format was corrupt"),
    ("bad_utf8", b"\x1a\x02\xff\xfe", "String field had bad UTF-8"),  # Value.string_value
    ("too_deep", deep_value(DEPTH_PAST_LIMIT), "MaxDepth"),
]


def call(channel: grpc.Channel, kind: str, bodies: list[bytes], **kwargs: object) -> list[bytes]:
    """Calls Parsed's `kind` with raw `bodies` (one for a unary request); all responses."""
    path = f"/{SERVICE}/{kind}"
    if kind == "UnaryUnary":
        return [channel.unary_unary(path)(bodies[0], **kwargs)]
    if kind in ("UnaryStream", "UnaryStreamWriter"):
        return list(channel.unary_stream(path)(bodies[0], **kwargs))
    if kind == "StreamUnary":
        return [channel.stream_unary(path)(iter(bodies), **kwargs)]
    return list(channel.stream_stream(path)(iter(bodies), **kwargs))


@pytest.fixture
def parses() -> Parses:
    return Parses()


@pytest.fixture
def server(serve: StartServer, parses: Parses) -> RunningServer:
    return serve(registrations=[registration(parses)])


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def server_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("kind", KINDS)
def test_well_formed_bodies_still_parse(channel: grpc.Channel, kind: str) -> None:
    responses = call(channel, kind, [GOOD, GOOD], timeout=10)
    assert struct_pb2.Value.FromString(responses[-1]).string_value.startswith("fine")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "body", "why"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_body_is_invalid_argument_without_traceback(
    channel: grpc.Channel,
    kind: str,
    name: str,
    body: bytes,
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.RpcError) as caught:
        call(channel, kind, [body], timeout=10)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert (error.details() or "").startswith("request is not a valid google.protobuf.Value: ")
    assert why in (error.details() or "")
    assert not server_errors(caplog)
    logged = [r for r in caplog.records if getattr(r, "method", "").endswith(f"/{kind}")]
    assert [getattr(r, "code", None) for r in logged] == ["INVALID_ARGUMENT"]


@pytest.mark.parametrize("kind", ["StreamUnary", "StreamStream"])
def test_malformed_message_later_in_a_stream(
    channel: grpc.Channel, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.RpcError) as caught:
        call(channel, kind, [GOOD, GOOD, b"\x1a\x02\xff\xfe"], timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not server_errors(caplog)


@pytest.mark.parametrize("kind", KINDS)
def test_unauthenticated_body_is_never_parsed(
    serve: StartServer, parses: Parses, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(ServerConfig(port=0, auth_token=TOKEN), registrations=[registration(parses)])
    bearer = [("authorization", f"Bearer {TOKEN}")]
    with grpc.insecure_channel(server.address) as channel:
        for body in (GOOD, b"\xff\xff\xff\xff", b"x" * (8 * 1024 * 1024)):
            with pytest.raises(grpc.RpcError) as caught:
                call(channel, kind, [body], timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert parses.count == 0
        with pytest.raises(grpc.RpcError) as caught:
            call(channel, kind, [b"\xff\xff\xff\xff"], metadata=bearer, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert call(channel, kind, [GOOD], metadata=bearer, timeout=10)
    assert parses.count == 2
    assert not server_errors(caplog)
