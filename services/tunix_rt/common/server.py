"""Bootstrap of a tunix-rt gRPC server: config → grpc.aio server with interceptors, health,
reflection, TLS and metrics → graceful shutdown on SIGTERM.

A service's entry point (what `tunix-rt serve registry` runs) looks like::

    async def build() -> list[ServiceRegistration]:
        servicer = RegistryServicer(...)
        return [ServiceRegistration(
            "tunix_rt.v1.RegistryService",
            lambda server: add_RegistryServiceServicer_to_server(servicer, server),
        )]

    run(from_env("registry", port=flags.port), "registry", build, on_shutdown=close_db)

Tests call `start_server` directly and `await running.stop()`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from tunix_rt.common.config import ConfigError, ServerConfig
from tunix_rt.common.interceptors import AuthInterceptor, ObservabilityInterceptor
from tunix_rt.common.logging_setup import configure_logging
from tunix_rt.common.metrics import MetricsHttpServer, RpcMetrics, new_registry
from tunix_rt.common.reflection import enable_reflection

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}

log = logging.getLogger("tunix_rt.server")


class HealthServicer(health_aio.HealthServicer):  # type: ignore[misc]
    """grpcio-health-checking's servicer plus `List` (every service's status, "" included, as
    grpc-go answers it), which its servicer leaves UNIMPLEMENTED."""

    # The protocol's bound: past it List answers RESOURCE_EXHAUSTED rather than a huge reply.
    LIST_LIMIT = 100

    def __init__(self) -> None:
        super().__init__()
        # A copy of what was set, kept through the public setters: the parent's map is private.
        self._statuses: dict[str, int] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._shutting_down = False

    async def set(self, service: str, status: int) -> None:
        if not self._shutting_down:
            self._statuses[service] = status
        await super().set(service, status)

    async def enter_graceful_shutdown(self) -> None:
        if not self._shutting_down:
            self._shutting_down = True
            self._statuses = dict.fromkeys(
                self._statuses, health_pb2.HealthCheckResponse.NOT_SERVING
            )
        await super().enter_graceful_shutdown()

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        if len(self._statuses) > self.LIST_LIMIT:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {self.LIST_LIMIT} services; ask Check for one",
            )
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._statuses.items()
            }
        )


@dataclass(frozen=True)
class ServiceRegistration:
    """One gRPC service to serve: its full proto name and how to add its servicer to a server."""

    # Fully qualified proto service name, e.g. "tunix_rt.v1.RegistryService": the health status
    # key and the name reflection lists.
    name: str
    # Adds the servicer, e.g. `lambda s: add_RegistryServiceServicer_to_server(servicer, s)`.
    add: Callable[[grpc.aio.Server], None]
    # Called once the server has started, e.g. to have its health follow a dependency's.
    started: Callable[[RunningServer], Awaitable[None]] | None = None


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channel arguments of every tunix-rt server."""
    return [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        # Ping idle connections every 60 s and drop them after 20 s without an answer, so a
        # vanished client's metric or token stream is cleaned up instead of held forever
        # (NAT / load balancers silently drop idle TCP flows after minutes).
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Accept client pings as often as every 10 s (our client pings every 30 s); stricter
        # servers answer frequent pings with GOAWAY "too_many_pings" and break long streams.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
        # gRPC sets SO_REUSEPORT by default, which lets a second server silently share a busy
        # port and steal half its connections; binding must fail loudly instead.
        ("grpc.so_reuseport", 0),
    ]


class RunningServer:
    """A started server: where it listens, its health, and how to stop it."""

    def __init__(
        self,
        *,
        server: grpc.aio.Server,
        health: HealthServicer,
        metrics_http: MetricsHttpServer | None,
        metrics_registry: CollectorRegistry,
        config: ServerConfig,
        service_name: str,
        port: int,
    ) -> None:
        self._server = server
        self._health = health
        self._metrics_http = metrics_http
        self._stopped = False
        self.config = config
        self.service_name = service_name
        # The bound gRPC port (the OS's pick when config.port was 0).
        self.port = port
        # The bound metrics port, or None when metrics are disabled.
        self.metrics_port: int | None = metrics_http.port if metrics_http else None
        # The registry behind /metrics; services may register their own collectors on it.
        self.metrics_registry = metrics_registry
        # "host:port" a client on this machine can dial (a wildcard host becomes loopback).
        self.address = f"{_connect_host(config.host)}:{port}"

    async def set_serving(self, serving: bool, service: str = "") -> None:
        """Report `service` ("" = the whole server) SERVING or NOT_SERVING to health checks,
        e.g. while a dependency is down. Ignored once shutdown has begun."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set(service, status)

    async def stop(self, grace: float | None = None) -> None:
        """Health → NOT_SERVING, refuse new RPCs, give in-flight ones `grace` seconds (None =
        config.grace_seconds, 0 = cancel at once), then close the metrics endpoint. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.grace_seconds if grace is None else grace
        log.info("stopping", extra={"service": self.service_name, "grace_seconds": grace})
        await self._health.enter_graceful_shutdown()
        try:
            await self._server.stop(grace)
        finally:
            if self._metrics_http is not None:
                await self._metrics_http.aclose()
        log.info("stopped", extra={"service": self.service_name})

    async def wait_for_termination(self) -> None:
        """Return once the server has stopped. Safe to cancel."""
        # Shielded: cancelling grpc's own wait also cancels the future its shutdown awaits, and a
        # later stop() would then die with CancelledError.
        await asyncio.shield(self._server.wait_for_termination())

    async def __aenter__(self) -> RunningServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_server(
    config: ServerConfig,
    service_name: str,
    registrations: Sequence[ServiceRegistration],
    *,
    metrics_registry: CollectorRegistry | None = None,
) -> RunningServer:
    """Start serving `registrations` as `service_name` ("registry", …) per `config`.

    Pass `metrics_registry` to expose a service's own collectors beside the RPC metrics; by default
    the server makes a fresh one. Raises ConfigError for unreadable TLS files and OSError when a
    port cannot be bound.
    """
    registry = metrics_registry if metrics_registry is not None else new_registry()
    # Observability outermost: it logs and counts every call, rejected ones too, and parses request
    # bodies itself (interceptors' docstring); auth inside it rejects before anything is parsed.
    interceptors: list[grpc.aio.ServerInterceptor] = [
        ObservabilityInterceptor(service_name, RpcMetrics(service_name, registry))
    ]
    if config.auth_token is not None:
        interceptors.append(AuthInterceptor(config.auth_token))
    server = grpc.aio.server(interceptors=interceptors, options=server_options(config))

    for registration in registrations:
        registration.add(server)
    health = HealthServicer()  # "" (the whole server) starts SERVING
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for registration in registrations:
        await health.set(registration.name, health_pb2.HealthCheckResponse.SERVING)
    enable_reflection(server, [*(r.name for r in registrations), HEALTH_SERVICE_NAME])

    port = _bind(server, config)
    metrics_http = _start_metrics(config, registry)
    try:
        await server.start()
    except BaseException:
        if metrics_http is not None:
            await metrics_http.aclose()
        raise

    running = RunningServer(
        server=server,
        health=health,
        metrics_http=metrics_http,
        metrics_registry=registry,
        config=config,
        service_name=service_name,
        port=port,
    )
    for registration in registrations:
        if registration.started is not None:
            await registration.started(running)
    if config.auth_token is not None and not config.tls_enabled and not _is_loopback(config.host):
        log.warning(
            "bearer token auth without TLS on a non-loopback interface: the token travels in clear",
            extra={"service": service_name, "host": config.host},
        )
    log.info(
        "serving",
        extra={
            "service": service_name,
            "address": running.address,
            "port": running.port,
            "metrics_port": running.metrics_port,
            "metrics_host": config.metrics_bind_host if running.metrics_port is not None else None,
            "metrics_auth": config.metrics_auth,
            "tls": config.tls_enabled,
            "auth": config.auth_enabled,
            "services": [r.name for r in registrations],
        },
    )
    return running


def run(
    config: ServerConfig,
    service_name: str,
    build: Callable[[], Awaitable[Sequence[ServiceRegistration]]],
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; the body of `tunix-rt serve`.

    `build` runs inside the event loop (so the dependencies it creates, such as grpc.aio channels,
    belong to it) and returns the services to register. On a signal: health → NOT_SERVING, in-flight
    RPCs get `config.grace_seconds`, then `on_shutdown` releases what `build` made. Returns normally
    (exit status 0) after a signal-initiated shutdown.
    """
    configure_logging(config.log_format, config.log_level)
    asyncio.run(_serve(config, service_name, build, on_shutdown))


async def _serve(
    config: ServerConfig,
    service_name: str,
    build: Callable[[], Awaitable[Sequence[ServiceRegistration]]],
    on_shutdown: Callable[[], Awaitable[None]] | None,
) -> None:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()

    def request_stop(signum: int) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        stop_requested.set()

    # Installed before build() so a SIGTERM during a slow start still shuts down cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signum)
    try:
        registrations = await build()
        try:
            running = await start_server(config, service_name, registrations)
            try:
                stopped = asyncio.ensure_future(running.wait_for_termination())
                requested = asyncio.ensure_future(stop_requested.wait())
                await asyncio.wait({stopped, requested}, return_when=asyncio.FIRST_COMPLETED)
                for task in (stopped, requested):
                    task.cancel()
            finally:
                await running.stop(config.grace_seconds)
        finally:
            # Whatever build() made is released even when the server failed to start.
            if on_shutdown is not None:
                await on_shutdown()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    """Adds the listening port (TLS when configured) and returns it; OSError when it cannot."""
    bind_address = f"{_grpc_host(config.host)}:{config.port}"
    try:
        if config.tls_cert_file is not None and config.tls_key_file is not None:
            credentials = grpc.ssl_server_credentials(
                [(_read(config.tls_key_file, "key"), _read(config.tls_cert_file, "certificate"))]
            )
            port: int = server.add_secure_port(bind_address, credentials)
        else:
            port = server.add_insecure_port(bind_address)
    except RuntimeError as exc:  # grpc's way of saying the bind failed
        raise OSError(f"cannot listen on {bind_address}: {exc}") from exc
    if port == 0:
        raise OSError(f"cannot listen on {bind_address}")
    return port


def _start_metrics(config: ServerConfig, registry: CollectorRegistry) -> MetricsHttpServer | None:
    """The /metrics endpoint `config` asks for (where and whether behind the token), or None."""
    if config.metrics_port is None:
        return None
    return MetricsHttpServer.start(
        registry,
        config.metrics_bind_host,
        config.metrics_port,
        token=config.auth_token if config.metrics_auth else None,
    )


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read TLS {what} file {path!r}: {exc.strerror}") from exc


def _grpc_host(host: str) -> str:
    # gRPC addresses need IPv6 literals bracketed: "[::]:50051".
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _connect_host(host: str) -> str:
    return _WILDCARD_HOSTS.get(host, _grpc_host(host))


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or host.startswith("127.")
