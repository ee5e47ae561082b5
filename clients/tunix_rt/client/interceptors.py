"""Client interceptors of every tunix-rt channel: the bearer token and request ids.

Two jobs, done before gRPC's own retry layer sees a call:

- On insecure channels, add `authorization: Bearer <token>` (secure channels use call credentials,
  which gRPC refuses to send in clear text).
- On unary requests that have a `request_id` field left empty (creates), fill it with a fresh uuid4.
  Retries happen below the interceptor, so every attempt of one call carries the same id and the
  server can answer a repeat with the first result. This holds for callers of the raw stub too,
  which is what makes the retry policy of channel.idempotent_methods safe for them.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import grpc
import grpc.aio
from google.protobuf.message import Message


def with_request_id(request: Any) -> Any:
    """`request` with an empty `request_id` filled; the caller's message is never modified."""
    if not isinstance(request, Message) or "request_id" not in request.DESCRIPTOR.fields_by_name:
        return request
    message: Any = request  # the generated class has the field; Message itself does not say so
    if message.request_id:
        return request
    filled: Any = type(request)()
    filled.CopyFrom(request)
    filled.request_id = uuid.uuid4().hex
    return filled


def _metadata(metadata: Any, token: str | None) -> list[tuple[str, str | bytes]]:
    items: list[tuple[str, str | bytes]] = list(metadata or ())
    if token:
        items.append(("authorization", f"Bearer {token}"))
    return items


class _CallDetails(NamedTuple):
    """grpc.ClientCallDetails is abstract; this is the usual concrete stand-in."""

    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class ClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc ships no type stubs
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """For sync channels: the token (when given) on every call, request ids on unary requests."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        if not self._token:
            return details
        return _CallDetails(
            details.method,
            details.timeout,
            _metadata(details.metadata, self._token),
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), with_request_id(request))

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), with_request_id(request))

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class AioClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """The asyncio twin of ClientInterceptor."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        if not self._token:
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*_metadata(details.metadata, self._token)),
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), with_request_id(request))

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), with_request_id(request))

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)
