"""grpc.aio server interceptors shared by every tunix-rt service.

- `ObservabilityInterceptor`: turns a domain error (`TunixError`) into its status with details, an
  unexpected exception into INTERNAL (traceback logged under an error id, nothing internal sent),
  writes one structured log line per RPC and feeds the Prometheus metrics.
- `AuthInterceptor`: requires `authorization: Bearer <token>` on every RPC except health checks.

Install them in that order (`grpc.aio.server(interceptors=[observability, auth])`): the first is the
outermost, so rejected calls are logged and counted too.

An aio interceptor only sees the method handler, so each wraps the handler's behaviour for all four
RPC kinds. Aborts (`context.abort`, which raises `grpc.aio.AbortError`) pass through unchanged.
Handlers should be `async def` functions or async generators. Plain functions (the generated base
servicer's stubs) run on a worker thread, except for request streams: those arrive as async
iterators once wrapped, so a sync request-streaming handler cannot consume them.

Request bodies reach the server as bytes and are parsed inside `ObservabilityInterceptor`'s wrapper,
not by gRPC: gRPC answers a body its deserializer refuses (garbage, invalid UTF-8, nesting past the
protobuf depth limit) with UNKNOWN and an ERROR traceback, while the wrapper answers
INVALID_ARGUMENT. `AuthInterceptor` sits inside it and rejects before the wrapper parses anything,
so an unauthenticated body, however large, is never parsed. A request stream is parsed message by
message as the handler iterates it; `context.read()` would hand a handler raw bytes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from contextlib import aclosing
from types import TracebackType
from typing import Any

import grpc

from tunix_rt.common.bearer import BearerToken
from tunix_rt.common.error_status import (
    grpc_status_for,
    internal_status,
    unimplemented_status,
)
from tunix_rt.common.errors import InvalidArgument, TunixError, Unauthenticated
from tunix_rt.common.logging_setup import set_request_id
from tunix_rt.common.metrics import RpcMetrics

HEALTH_METHOD_PREFIX = "/grpc.health.v1.Health/"
REQUEST_ID_KEY = "x-request-id"
AUTHORIZATION_KEY = "authorization"

# A caller's request id is logged verbatim, so only short, plain ones are trusted.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CODE_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}
_END = object()
# How protobuf (upb) says a body is not a message: the type and what was wrong with the body.
_PARSE_ERROR = re.compile(r"^Error parsing message with type '([\w.]+)': (.+)$", re.DOTALL)

# Codes that mean the server (or a dependency), not the caller, is in trouble.
_ERROR_CODES = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)
_WARNING_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)

# A method handler's behaviour: (request or request iterator, context) -> response(s).
Behavior = Callable[[Any, Any], Any]
ScopeFactory = Callable[[Any], "_RpcScope"]


def rebuild_handler(
    handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior, bool], Behavior]
) -> grpc.RpcMethodHandler:
    """A handler of the same kind and response serializer whose behaviour is
    `wrap(behaviour, streams)`, where `streams` says whether the response is a stream.

    The new handler takes its requests as bytes (no request deserializer): the wrapped behaviour
    parses them itself (`ObservabilityInterceptor`) or never reads them (`AuthInterceptor`'s
    rejection)."""
    deserialize, serialize = None, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            wrap(handler.stream_stream, True), deserialize, serialize
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, False), deserialize, serialize
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, True), deserialize, serialize
        )
    return grpc.unary_unary_rpc_method_handler(
        wrap(handler.unary_unary, False), deserialize, serialize
    )


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Error → status mapping, one structured log line and metrics for every registered RPC."""

    def __init__(
        self,
        service: str,
        metrics: RpcMetrics | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.logger = logger or logging.getLogger("tunix_rt.rpc")
        # method -> (the inner handler, its wrapped twin). Wrapping once per method rather than
        # once per call keeps the interceptor cheap (bench/registry.py measures it).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]

        def scope(context: Any) -> _RpcScope:
            return _RpcScope(self, method, context)

        decode = request_decoder(handler.request_deserializer, handler.request_streaming)
        wrapped = rebuild_handler(
            handler, lambda behavior, streams: _wrap(behavior, streams, scope, decode)
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects, with UNAUTHENTICATED, any RPC without `authorization: Bearer <token>`.

    Health checks are exempt: load balancers and orchestrators probe without credentials.
    """

    def __init__(self, token: str, *, exempt_prefixes: Sequence[str] = (HEALTH_METHOD_PREFIX,)):
        self._token = BearerToken(token)
        self._exempt = tuple(exempt_prefixes)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        # Look the handler up first: the rejection must have the same RPC kind as the method.
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._exempt):
            return handler
        metadata = handler_call_details.invocation_metadata
        problem = self._token.problem(_metadata_value(metadata, AUTHORIZATION_KEY))
        if problem is None:
            return handler
        status = grpc_status_for(Unauthenticated(problem))

        async def reject(request_or_iterator: Any, context: Any) -> None:
            # A coroutine suits every kind (stream responses accept the writer style); the
            # request stream is never read.
            await context.abort_with_status(status)

        return rebuild_handler(handler, lambda behavior, streams: reject)


class _RpcScope:
    """Around one RPC's behaviour: times it, maps its exception, logs it and counts it."""

    def __init__(self, interceptor: ObservabilityInterceptor, method: str, context: Any) -> None:
        self._interceptor = interceptor
        self._method = method
        self._context = context
        self._start = 0.0
        self._peer = ""
        self._deadline: float | None = None

    async def __aenter__(self) -> _RpcScope:
        # Not reset on exit: the RPC's task owns a private copy of the context, which dies with it.
        set_request_id(_request_id(self._context.invocation_metadata()))
        self._start = time.perf_counter()
        # Read while the call is alive: once a client cancels a response stream, grpc.aio (1.85)
        # can free the call before the handler's generator is closed, and asking the context for
        # its peer or deadline then dereferences a null pointer (a segfault, reproduced with a
        # client cancelling ExportDataset mid-stream).
        self._peer = self._context.peer()
        remaining = self._context.time_remaining()
        self._deadline = None if remaining is None else self._start + remaining
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        seconds = time.perf_counter() - self._start
        context = self._context
        if exc is None:
            # A handler may set a code without raising (context.set_code).
            self._finish(_context_code(context) or grpc.StatusCode.OK, seconds)
        elif isinstance(exc, grpc.aio.AbortError):
            # context.abort already chose the status; it must reach the client unchanged.
            self._finish(_context_code(context) or grpc.StatusCode.UNKNOWN, seconds)
        elif isinstance(exc, TunixError):
            status = grpc_status_for(exc)
            self._finish(status.code, seconds, reason=exc.reason)
            await context.abort_with_status(status)
        elif isinstance(exc, NotImplementedError):
            # The generated base servicer raises this for a method nobody implemented.
            self._finish(grpc.StatusCode.UNIMPLEMENTED, seconds)
            await context.abort_with_status(unimplemented_status(self._method))
        elif isinstance(exc, Exception):
            error_id = uuid.uuid4().hex
            self._finish(grpc.StatusCode.INTERNAL, seconds, error_id=error_id, exc=exc)
            await context.abort_with_status(internal_status(error_id))
        else:
            # CancelledError: the caller went away, the deadline passed or the server is stopping.
            # Never awaited on here: this may be an async generator being closed.
            expired = self._deadline is not None and time.perf_counter() >= self._deadline
            self._finish(
                grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED,
                seconds,
            )
        return False

    def _finish(
        self,
        code: grpc.StatusCode,
        seconds: float,
        *,
        reason: str | None = None,
        error_id: str | None = None,
        exc: BaseException | None = None,
    ) -> None:
        interceptor = self._interceptor
        if interceptor.metrics is not None:
            interceptor.metrics.observe(self._method, code, seconds)
        level = _level(self._method, code)
        if not interceptor.logger.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "service": interceptor.service,
            "method": self._method,
            "code": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "peer": self._peer,
        }
        if reason is not None:
            fields["reason"] = reason
        if error_id is not None:
            fields["error_id"] = error_id
        interceptor.logger.log(level, "rpc", extra=fields, exc_info=exc)


def request_decoder(
    deserialize: Callable[[bytes], Any] | None, request_streams: bool
) -> Callable[[Any], Any]:
    """What turns the raw request (bytes, or an async iterator of bytes for a request stream) into
    what the handler expects, raising InvalidArgument for a body `deserialize` refuses."""
    if deserialize is None:  # a bytes-in method (the tests' Probe service)
        return _same
    parse_body = deserialize

    def parse(raw: bytes) -> Any:
        try:
            return parse_body(raw)
        except Exception as exc:
            # The body is all the caller's: whatever the parser refuses, the caller sent.
            found = _PARSE_ERROR.match(str(exc))
            expected, why = found.groups() if found else ("request message", str(exc))
            raise InvalidArgument(f"request is not a valid {expected}: {why}") from None

    if request_streams:
        return lambda requests: _DecodedStream(requests, parse)
    return parse


class _DecodedStream:
    """A request stream whose messages are parsed as the handler reads them."""

    def __init__(self, requests: AsyncIterable[bytes], parse: Callable[[bytes], Any]) -> None:
        self._requests = aiter(requests)
        self._parse = parse

    def __aiter__(self) -> _DecodedStream:
        return self

    async def __anext__(self) -> Any:
        return self._parse(await anext(self._requests))


def _same(request: Any) -> Any:
    return request


def _wrap(
    behavior: Behavior,
    response_streams: bool,
    scope: ScopeFactory,
    decode: Callable[[Any], Any],
) -> Behavior:
    # Every variant decodes inside its scope, so a malformed body is logged and counted as the
    # INVALID_ARGUMENT it becomes.
    if not response_streams:

        async def respond(request: Any, context: Any) -> Any:
            async with scope(context):
                return await _unary_response(behavior, decode(request), context)

        return respond

    if inspect.iscoroutinefunction(behavior):
        # Writer style (`await context.write(...)`): gRPC only allows it from a coroutine.
        async def write_responses(request: Any, context: Any) -> None:
            async with scope(context):
                await behavior(decode(request), context)

        return write_responses

    async def yield_responses(request: Any, context: Any) -> AsyncIterator[Any]:
        async with scope(context):
            decoded = decode(request)
            async with aclosing(_responses(behavior, decoded, context)) as responses:
                async for response in responses:
                    yield response

    return yield_responses


async def _unary_response(behavior: Behavior, request: Any, context: Any) -> Any:
    if inspect.iscoroutinefunction(behavior):
        return await behavior(request, context)
    # A sync handler (such as the generated base servicer's stubs) runs off the event loop, as
    # grpc.aio itself would run it.
    result = await asyncio.to_thread(behavior, request, context)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _responses(behavior: Behavior, request: Any, context: Any) -> AsyncGenerator[Any, None]:
    if inspect.isasyncgenfunction(behavior):
        responses = behavior(request, context)
    else:
        responses = await asyncio.to_thread(behavior, request, context)
    if hasattr(responses, "__aiter__"):
        async for response in responses:
            yield response
    elif inspect.isawaitable(responses):
        await responses
    elif responses is not None:
        # A sync generator may block between items; step it on a worker thread.
        iterator = iter(responses)
        while (response := await asyncio.to_thread(next, iterator, _END)) is not _END:
            yield response


def _metadata_value(metadata: Sequence[tuple[str, str | bytes]] | None, key: str) -> str | None:
    for name, value in metadata or ():
        if name == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


def _request_id(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    given = _metadata_value(metadata, REQUEST_ID_KEY)
    if given is not None and _VALID_REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _context_code(context: Any) -> grpc.StatusCode | None:
    code = context.code()
    if isinstance(code, int):  # some grpc versions hand back the raw number
        return _CODE_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    return code if isinstance(code, grpc.StatusCode) else None


def _level(method: str, code: grpc.StatusCode) -> int:
    if code in _ERROR_CODES:
        return logging.ERROR
    if code in _WARNING_CODES:
        return logging.WARNING
    # Orchestrators probe health every few seconds; those lines would drown the rest.
    if method.startswith(HEALTH_METHOD_PREFIX):
        return logging.DEBUG
    return logging.INFO
