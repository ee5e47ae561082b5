"""A test-only gRPC service, `tunix_rt.test.Probe`, whose methods misbehave on request.

Requests and responses are raw bytes (no serializers). The request (the first one, for a request
stream) is a command: `ok`, `invalid`, `not_found`, `exists`, `precondition`, `boom`, `abort`,
`unimplemented`, `request_id`, or `bad_id:<value>` / `no_model:<value>` (a domain error quoting
`value`, which may be huge). Streaming responses send `first` before obeying it, so errors are
also raised mid-stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from tunix_rt.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from tunix_rt.common.logging_setup import current_request_id
from tunix_rt.common.server import ServiceRegistration

SERVICE = "tunix_rt.test.Probe"
# Text an unexpected exception carries; it must never reach a client.
SECRET = "db password hunter2 at /var/lib/tunix/secret.db"
KINDS = ("UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream")


def method(name: str) -> str:
    """The full method path of a Probe method."""
    return f"/{SERVICE}/{name}"


async def obey(command: bytes, context: grpc.aio.ServicerContext) -> bytes:
    """Do what `command` says: answer, raise a domain or unexpected error, or abort."""
    if command == b"invalid":
        raise InvalidArgument.field("trace.prompt", "must not be empty")
    if command == b"not_found":
        raise NotFound("model", "models/m1")
    if command == b"exists":
        raise AlreadyExists("dataset", "datasets/d1")
    if command == b"precondition":
        raise FailedPrecondition(
            "job already finished", reason="JOB_FINISHED", metadata={"job": "jobs/j1"}
        )
    if command == b"boom":
        raise RuntimeError(SECRET)
    if command == b"abort":
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "custom abort")
    if command == b"unimplemented":
        raise NotImplementedError
    if command == b"request_id":
        return (current_request_id() or "").encode()
    if command.startswith(b"bad_id:"):
        value = command.partition(b":")[2].decode()
        raise InvalidArgument.field("model_id", f"{value!r} is not a valid id")
    if command.startswith(b"no_model:"):
        raise NotFound("model", command.partition(b":")[2].decode())
    return command


async def unary_unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return await obey(request, context)


async def unary_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    yield await obey(request, context)


async def stream_unary(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    received = [request async for request in requests]
    return await obey(received[0], context)


async def stream_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    async for request in requests:
        yield b"first"
        yield await obey(request, context)


async def unary_stream_writer(request: bytes, context: grpc.aio.ServicerContext) -> None:
    """The reader/writer style: `await context.write(...)` from a coroutine."""
    await context.write(b"first")
    await context.write(await obey(request, context))


def sync_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    """A plain function, like the generated base servicer's stubs."""
    if request == b"boom":
        raise RuntimeError(SECRET)
    if request == b"unimplemented":
        raise NotImplementedError
    return request


def registration() -> ServiceRegistration:
    """Probe as a ServiceRegistration for start_server."""
    handlers = {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream),
        "UnaryStreamWriter": grpc.unary_stream_rpc_method_handler(unary_stream_writer),
        "SyncUnary": grpc.unary_unary_rpc_method_handler(sync_unary),
    }
    generic = grpc.method_handlers_generic_handler(SERVICE, handlers)
    return ServiceRegistration(SERVICE, lambda server: server.add_generic_rpc_handlers([generic]))


def call(channel: grpc.Channel, kind: str, command: bytes, **kwargs: object) -> list[bytes]:
    """Call Probe's `kind` method with `command` through a sync channel; all responses."""
    if kind == "UnaryUnary" or kind == "SyncUnary":
        return [channel.unary_unary(method(kind))(command, **kwargs)]
    if kind in ("UnaryStream", "UnaryStreamWriter"):
        return list(channel.unary_stream(method(kind))(command, **kwargs))
    if kind == "StreamUnary":
        return [channel.stream_unary(method(kind))(iter([command, b"more"]), **kwargs)]
    if kind == "StreamStream":
        return list(channel.stream_stream(method(kind))(iter([command]), **kwargs))
    raise ValueError(kind)
