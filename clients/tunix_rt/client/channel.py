"""gRPC channels to tunix-rt services: address, auth, TLS, message sizes and retries in one place.

Every tunix-rt client (the Python API, the CLI, service-to-service calls) builds its channel
here, so they all agree with the servers on message sizes and all retry the same, safe, calls:

    settings = ChannelSettings.from_env(address, env_var=REGISTRY_ENV)
    channel = build_channel(settings, {REGISTRY_SERVICE: REGISTRY_IDEMPOTENT})

gRPC itself retries, from the channel's service config (gRFC A6), not a Python loop: only the
methods listed there, only on UNAVAILABLE (the server was not reached, or is shutting down), with
exponential backoff and jitter, and never once a response has started.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor

from tunix_rt.client.interceptors import AioClientInterceptor, ClientInterceptor

TOKEN_ENV = "TUNIX_RT_AUTH_TOKEN"
TLS_CA_ENV = "TUNIX_RT_TLS_CA"
REGISTRY_ENV = "TUNIX_RT_REGISTRY"
DEFAULT_REGISTRY_ADDRESS = "127.0.0.1:50051"

# The servers accept and send messages up to 64 MiB (a batch of traces, an evaluation's items); the
# client must allow as much, or a large but legal response fails with RESOURCE_EXHAUSTED here.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Method-name prefixes of calls that only read: repeating one is always harmless.
_READ_PREFIXES = ("Get", "List", "Resolve", "Export", "Download")


@dataclass(frozen=True)
class RetryPolicy:
    """How gRPC retries an idempotent call that failed with a retryable code (gRFC A6)."""

    # Attempts in all, the first included; gRPC caps this at 5.
    max_attempts: int = 5
    # Delay before the first retry; each next one is multiplied by `backoff_multiplier` up to
    # `max_backoff_s`; gRPC waits a uniformly random time in [0, delay] (jitter), so clients that
    # failed together do not all come back together.
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    backoff_multiplier: float = 2.0
    # UNAVAILABLE only: the call did not reach a server that could act on it (connection refused,
    # server draining). Other codes are answers, and repeating the question will not change them.
    retryable_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def to_json(self) -> dict[str, Any]:
        """The `retryPolicy` object of a gRPC service config."""
        return {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff_s}s",
            "maxBackoff": f"{self.max_backoff_s}s",
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": list(self.retryable_codes),
        }


def idempotent_methods(service: ServiceDescriptor, extra: Collection[str] = ()) -> frozenset[str]:
    """The methods of `service` that are safe to send twice.

    Reads (Get*, List*, Resolve*, Export*, Download*) change nothing. Methods whose request has a
    `request_id` (the creates) are safe because our channels fill an empty one with a fresh uuid4
    before gRPC's retry layer sees the call (interceptors.ClientInterceptor), so every attempt of
    one call carries the same id, and the server answers a repeated `request_id` with the first
    result instead of creating a second resource: a retry after a lost response cannot make a
    duplicate. `extra` names methods that are idempotent for a reason the descriptor cannot show.
    """
    names = {
        m.name
        for m in service.methods
        if m.name.startswith(_READ_PREFIXES) or "request_id" in m.input_type.fields_by_name
    }
    unknown = set(extra) - {m.name for m in service.methods}
    if unknown:
        raise ValueError(f"{service.full_name} has no methods {sorted(unknown)}")
    return frozenset(names | set(extra))


def retry_service_config(
    idempotent: Mapping[str, Collection[str]], policy: RetryPolicy = RetryPolicy()
) -> dict[str, Any]:
    """A gRPC service config that retries exactly the given methods.

    `idempotent` maps a full service name (`tunix_rt.v1.RegistryService`) to method names. Methods
    not listed get no retry policy, so a Delete or a state transition is never sent twice.
    """
    names = [
        {"service": service, "method": method}
        for service, methods in sorted(idempotent.items())
        for method in sorted(methods)
    ]
    config: dict[str, Any] = {
        "methodConfig": [{"name": names, "retryPolicy": policy.to_json()}] if names else [],
        # A token bucket per channel: when more than half the recent calls failed, retries stop
        # until calls succeed again, so a struggling server is not hit by 5x the traffic.
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }
    return config


def resolve_address(address: str | None, env_var: str, default: str) -> str:
    """The target to dial: `address`, else `$env_var`, else `default`.

    A bare host (`registry.internal`) gets the default's port; `unix:` targets and `[v6]:port`
    pass through unchanged.
    """
    target = (address or os.environ.get(env_var) or default).strip()
    for scheme in ("grpc://", "http://"):
        # Accept the URL form people paste from docs; gRPC targets have no such scheme.
        target = target.removeprefix(scheme)
    if target.startswith(("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:")):
        return target
    default_port = default.rsplit(":", 1)[1]
    if target.startswith("["):
        # [::1] or [::1]:50051
        return target if "]:" in target else f"{target}:{default_port}"
    if target.count(":") == 1:
        return target
    if target.count(":") > 1:
        # A bare IPv6 literal; gRPC needs it bracketed to add the port.
        return f"[{target}]:{default_port}"
    return f"{target}:{default_port}"


@dataclass(frozen=True)
class ChannelSettings:
    """Where and how to connect: everything a channel needs besides which methods to retry."""

    # The gRPC target, `host:port` or `unix:/path`.
    address: str
    # A bearer token sent as `authorization: Bearer <token>` on every call; None sends none.
    token: str | None = None
    # A PEM file of root certificates; setting it (or `tls`) makes the channel use TLS.
    tls_ca: Path | None = None
    # TLS with the system's root certificates when `tls_ca` is None.
    tls: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_message_bytes: int = MAX_MESSAGE_BYTES

    @classmethod
    def from_env(
        cls,
        address: str | None,
        *,
        env_var: str = REGISTRY_ENV,
        default: str = DEFAULT_REGISTRY_ADDRESS,
        token: str | None = None,
        tls_ca: Path | None = None,
    ) -> ChannelSettings:
        """Settings from explicit values, falling back to the environment: the address to
        `$env_var` then `default`, the token to $TUNIX_RT_AUTH_TOKEN, the CA to $TUNIX_RT_TLS_CA."""
        ca = tls_ca or (Path(os.environ[TLS_CA_ENV]) if os.environ.get(TLS_CA_ENV) else None)
        return cls(
            address=resolve_address(address, env_var, default),
            token=token or os.environ.get(TOKEN_ENV) or None,
            tls_ca=ca,
        )

    @property
    def secure(self) -> bool:
        return self.tls or self.tls_ca is not None

    def options(self, idempotent: Mapping[str, Collection[str]]) -> list[tuple[str, Any]]:
        """Channel arguments: message sizes and the retrying service config."""
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", json.dumps(retry_service_config(idempotent, self.retry))),
            # Our service config is the whole truth: ignore any a DNS TXT record might publish.
            ("grpc.service_config_disable_resolution", 1),
        ]

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials, with the token as call credentials (secure channels only)."""
        roots = self.tls_ca.read_bytes() if self.tls_ca is not None else None
        creds = grpc.ssl_channel_credentials(root_certificates=roots)
        if self.token:
            # Sends `authorization: Bearer <token>`; gRPC refuses call credentials on an insecure
            # channel, which is why insecure channels send it from ClientInterceptor instead.
            creds = grpc.composite_channel_credentials(
                creds, grpc.access_token_call_credentials(self.token)
            )
        return creds


def build_channel(
    settings: ChannelSettings, idempotent: Mapping[str, Collection[str]]
) -> grpc.Channel:
    """A synchronous channel for `settings`, retrying the `idempotent` methods (full service name
    to method names)."""
    options = settings.options(idempotent)
    if settings.secure:
        channel = grpc.secure_channel(settings.address, settings.credentials(), options=options)
        # The token travels as call credentials (see credentials()); the interceptor only fills
        # request ids.
        return grpc.intercept_channel(channel, ClientInterceptor(token=None))
    channel = grpc.insecure_channel(settings.address, options=options)
    return grpc.intercept_channel(channel, ClientInterceptor(token=settings.token))


def build_aio_channel(
    settings: ChannelSettings, idempotent: Mapping[str, Collection[str]]
) -> grpc.aio.Channel:
    """The asyncio twin of build_channel, for clients that run on an event loop."""
    options = settings.options(idempotent)
    if settings.secure:
        return grpc.aio.secure_channel(
            settings.address,
            settings.credentials(),
            options=options,
            interceptors=[AioClientInterceptor(token=None)],
        )
    return grpc.aio.insecure_channel(
        settings.address, options=options, interceptors=[AioClientInterceptor(settings.token)]
    )
