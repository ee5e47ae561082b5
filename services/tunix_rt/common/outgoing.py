"""How one tunix-rt service calls another: the channel it dials, and what a failed call means.

Every service-to-service call (training → registry, its workers → registry, training → inference
for evaluation on completion, inference → registry) goes through here, so all of them carry the
bearer token and TLS, retry the same safe methods and agree with the servers on message sizes:

    settings = OutgoingSettings.of(address)       # token and CA fall back to the environment
    channel = aio_channel(settings, REGISTRY)     # sync_channel() for threads and worker processes
    try: ...
    except grpc.RpcError as err: raise registry_error(err, name, field="source.dataset") from None

The environment variables are the CLI's ($TUNIX_RT_AUTH_TOKEN, $TUNIX_RT_TLS_CA), so a service
and the CLI started in one shell dial alike. clients/tunix_rt/client/channel.py is the callers'
side of the same contract; the two do not import each other (clients and services ship apart).

Retries are gRPC's own (a service config, gRFC A6): only on UNAVAILABLE, with exponential backoff
and jitter, before any response arrived, and only for methods that are safe to send twice — reads
and creates with a `request_id` (filled here when empty, so every attempt carries the same one).
A state transition, a delete or an alias move is never repeated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from tunix_rt.common.config import ConfigError, ServerConfig
from tunix_rt.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TunixError,
    Unavailable,
)
from tunix_rt.v1 import inference_service_pb2, registry_service_pb2

TOKEN_ENV = "TUNIX_RT_AUTH_TOKEN"
TLS_CA_ENV = "TUNIX_RT_TLS_CA"
REGISTRY = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"]
INFERENCE = inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"]
_READS = ("Get", "List", "Resolve", "Export", "Download")
T = TypeVar("T")


@dataclass(frozen=True)
class OutgoingSettings:
    """Where and how a service dials another tunix-rt service."""

    # The gRPC target, `host:port` or `unix:/path`.
    address: str
    # Sent as `authorization: Bearer <token>` on every call; None sends none. Kept out of repr.
    token: str | None = field(default=None, repr=False)
    # PEM roots that sign the other service's certificate; set means TLS, None plaintext.
    tls_ca: Path | None = None
    # Deadline of a unary call that gives none; streams run as long as their caller allows.
    deadline_s: float = 30.0
    # Ping an idle connection with calls in flight this often, so a vanished peer fails a long
    # stream in seconds, not when TCP gives up; the servers accept pings every 10 s.
    keepalive_s: float = 30.0
    # The servers' limit: a large but legal message must not fail here with RESOURCE_EXHAUSTED.
    max_message_bytes: int = 64 << 20
    # Attempts in all (gRPC caps it at 5) and the backoff before the first retry, doubled per
    # retry up to `max_backoff_s`; gRPC waits a random time up to that delay (jitter).
    max_attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    @classmethod
    def of(
        cls, address: str, *, token: str | None = None, tls_ca: str | Path | None = None
    ) -> OutgoingSettings:
        """Settings from explicit values, else $TUNIX_RT_AUTH_TOKEN and $TUNIX_RT_TLS_CA (an
        empty variable counts as unset, as in the server config)."""
        ca = tls_ca or os.environ.get(TLS_CA_ENV, "").strip() or None
        token = token or os.environ.get(TOKEN_ENV, "").strip() or None
        return cls(address, token=token, tls_ca=Path(ca) if ca else None)

    @classmethod
    def of_server(cls, address: str, config: ServerConfig) -> OutgoingSettings:
        """How the server of `config` dials: with the token it requires itself (one token for
        the whole deployment) and its CA, each else from the environment."""
        return cls.of(address, token=config.auth_token, tls_ca=config.tls_ca_file)

    def to(self, address: str) -> OutgoingSettings:
        """The same credentials for another service."""
        return dataclasses.replace(self, address=address)

    def environment(self) -> dict[str, str]:
        """The variables that make a child process's `of` dial as this does (both always set,
        so the child never falls back to a different value in its inherited environment)."""
        return {TOKEN_ENV: self.token or "", TLS_CA_ENV: str(self.tls_ca or "")}

    def options(self, *services: ServiceDescriptor) -> list[tuple[str, Any]]:
        """Channel arguments: message sizes, keepalive and the retrying service config."""
        retry = {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff_s}s",
            "maxBackoff": f"{self.max_backoff_s}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        names = [{"service": s.full_name, "method": m} for s in services for m in retried(s)]
        config = {
            "methodConfig": [{"name": names, "retryPolicy": retry}] if names else [],
            # Retries stop while most recent calls fail, so a struggling peer is not hit 5x.
            "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
        }
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", json.dumps(config)),
            # Ours is the whole truth: ignore a service config a DNS TXT record might publish.
            ("grpc.service_config_disable_resolution", 1),
        ]

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS trusting `tls_ca`, with the token as call credentials."""
        assert self.tls_ca is not None
        try:
            roots = self.tls_ca.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read TLS CA file {self.tls_ca}: {exc}") from None
        creds = grpc.ssl_channel_credentials(root_certificates=roots)
        if self.token:
            token = grpc.access_token_call_credentials(self.token)
            creds = grpc.composite_channel_credentials(creds, token)
        return creds


def retried(service: ServiceDescriptor) -> list[str]:
    """The methods of `service` safe to send twice: reads, and creates with a `request_id`."""
    return [
        m.name
        for m in service.methods
        if m.name.startswith(_READS) or "request_id" in m.input_type.fields_by_name
    ]


def aio_channel(settings: OutgoingSettings, *services: ServiceDescriptor) -> grpc.aio.Channel:
    """An asyncio channel to `settings.address` that retries the safe methods of `services`."""
    options = settings.options(*services)
    if settings.tls_ca is not None:
        # The token travels as call credentials, which gRPC sends only over TLS.
        interceptors = [_AioInterceptor(None, settings.deadline_s)]
        return grpc.aio.secure_channel(
            settings.address, settings.credentials(), options, interceptors=interceptors
        )
    interceptors = [_AioInterceptor(settings.token, settings.deadline_s)]
    return grpc.aio.insecure_channel(settings.address, options, interceptors=interceptors)


def sync_channel(settings: OutgoingSettings, *services: ServiceDescriptor) -> grpc.Channel:
    """The synchronous twin of aio_channel, for worker threads and worker processes."""
    options = settings.options(*services)
    if settings.tls_ca is not None:
        channel = grpc.secure_channel(settings.address, settings.credentials(), options)
        return grpc.intercept_channel(channel, _SyncInterceptor(None, settings.deadline_s))
    channel = grpc.insecure_channel(settings.address, options)
    return grpc.intercept_channel(channel, _SyncInterceptor(settings.token, settings.deadline_s))


def failure(err: grpc.RpcError) -> tuple[str, str]:
    """A failed call's (status code name, details); an error that is no call says UNKNOWN."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    return (code.name if code is not None else "UNKNOWN"), str(details or "")


def registry_error(err: grpc.RpcError, name: str, field: str = "", kind: str = "") -> TunixError:
    """The domain error of a failed registry call about `name`, so the caller of this service
    gets the registry's answer with the right code: INVALID_ARGUMENT blamed on this request's
    `field` (when given), NOT_FOUND naming the `kind` of resource (e.g. "model"; "" when the
    registry's message already does). Anything not an answer means the registry is unavailable."""
    code, details = failure(err)
    if code == "NOT_FOUND":
        if kind:
            return NotFound(kind, name, f"{kind} {name!r} not found: {details}")
        return NotFound("resource", name, details)
    if code == "INVALID_ARGUMENT" and field:
        return InvalidArgument.field(field, f"{name!r}: {details}")
    if code == "INVALID_ARGUMENT":
        return InvalidArgument(details)
    if code == "ALREADY_EXISTS":
        return AlreadyExists(kind or "resource", name, details)
    if code == "FAILED_PRECONDITION":
        return FailedPrecondition(details)
    return Unavailable(f"registry call failed: {code}: {details}")


def registry_call(call: Callable[[], T], name: str, field: str = "", kind: str = "") -> T:
    """Runs a synchronous registry call about `name`, its failure raised as `registry_error`."""
    try:
        return call()
    except grpc.RpcError as err:
        raise registry_error(err, name, field, kind) from None


def _with_request_id(request: Any) -> Any:
    """`request` with an empty `request_id` filled (a copy): every retry then repeats it."""
    if not isinstance(request, Message) or "request_id" not in request.DESCRIPTOR.fields_by_name:
        return request
    held: Any = request
    if held.request_id:
        return request
    filled: Any = type(request)()
    filled.CopyFrom(request)
    filled.request_id = uuid.uuid4().hex
    return filled


class _Calls:
    """What both interceptors add to a call: the token on plaintext channels (one the caller
    passes on, e.g. its own caller's, wins) and the default deadline of unary calls."""

    def __init__(self, token: str | None, deadline_s: float) -> None:
        self._token = token
        self._deadline_s = deadline_s

    def details(self, details: Any, unary: bool, wrap: Callable[..., Any]) -> Any:
        changes: dict[str, Any] = {}
        if unary and details.timeout is None:
            changes["timeout"] = self._deadline_s
        held = list(details.metadata or ())
        if self._token and not any(key == "authorization" for key, _ in held):
            changes["metadata"] = wrap(*held, ("authorization", f"Bearer {self._token}"))
        # Both grpc's sync and aio call details are named tuples.
        return details._replace(**changes) if changes else details


class _SyncInterceptor(
    _Calls,
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc ships no type stubs
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self.details(details, True, _plain_metadata), _with_request_id(request))

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(
            self.details(details, False, _plain_metadata), _with_request_id(request)
        )

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self.details(details, False, _plain_metadata), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self.details(details, False, _plain_metadata), requests)


class _AioInterceptor(
    _Calls,
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        wrapped = self.details(details, True, grpc.aio.Metadata)
        return await continuation(wrapped, _with_request_id(request))

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        wrapped = self.details(details, False, grpc.aio.Metadata)
        return await continuation(wrapped, _with_request_id(request))

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self.details(details, False, grpc.aio.Metadata), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self.details(details, False, grpc.aio.Metadata), requests)


def _plain_metadata(*items: Any) -> tuple[Any, ...]:
    return items
