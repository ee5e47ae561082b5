"""Prometheus metrics of a tunix-rt server: RPC counts and latencies per method and code, served
over HTTP at `/metrics`, optionally only to callers with the server's bearer token.

Each server owns its `CollectorRegistry` (never the process-global default), so several servers in
one process (tests, an all-in-one dev mode) keep separate series and never clash on registration.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer

from tunix_rt.common.bearer import BearerToken

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Seconds. Prometheus' defaults stop at 10 s; streaming RPCs (dataset export, metric streams,
# token generation) run for minutes, so the tail goes on to 10 minutes.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
)


def new_registry() -> CollectorRegistry:
    """A registry with process and platform collectors (CPU, memory, fds, Python version)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class RpcMetrics:
    """RPC metrics: `tunix_rt_rpc_total{service,method,code}` and
    `tunix_rt_rpc_duration_seconds{service,method}`.

    `method` is the full gRPC method (`/tunix_rt.v1.RegistryService/GetTrace`); only registered
    methods are observed, so a client cannot grow the label set with made-up names.
    """

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.registry = registry
        # prometheus_client exposes a Counter named "tunix_rt_rpc" as tunix_rt_rpc_total.
        self._calls = Counter(
            "tunix_rt_rpc",
            "RPCs finished, by method and status code.",
            ["service", "method", "code"],
            registry=registry,
        )
        self._duration = Histogram(
            "tunix_rt_rpc_duration_seconds",
            "Time from the start of an RPC to its status, in seconds.",
            ["service", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._call_children: dict[tuple[str, grpc.StatusCode], Any] = {}
        self._duration_children: dict[str, Any] = {}

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count one finished RPC and record its duration."""
        # Label lookups take a lock and hash the label tuple each time; the children are cached.
        key = (method, code)
        counter = self._call_children.get(key)
        if counter is None:
            counter = self._call_children[key] = self._calls.labels(self.service, method, code.name)
        timer = self._duration_children.get(method)
        if timer is None:
            timer = self._duration_children[method] = self._duration.labels(self.service, method)
        counter.inc()
        timer.observe(seconds)


class MetricsHttpServer:
    """The `/metrics` HTTP endpoint of one registry, on a daemon thread, and a way to stop it."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.port: int = httpd.server_port

    @classmethod
    def start(
        cls, registry: CollectorRegistry, host: str, port: int, token: str | None = None
    ) -> MetricsHttpServer:
        """Listen on `host:port` (port 0 picks a free one; `host` may be a bracketed IPv6); with
        `token`, answer 401 to a request without `Authorization: Bearer <token>`."""
        app: WsgiApp = make_wsgi_app(registry)
        if token is not None:
            app = _bearer_only(app, token)
        address = host.strip("[]")

        class Server(ThreadingWSGIServer):
            # Per server: the family of this address (IPv4 or IPv6), as prometheus_client does.
            address_family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0][0]

        httpd = make_server(address, port, app, Server, handler_class=_QuietHandler)
        thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
        thread.start()
        return cls(httpd, thread)

    def close(self) -> None:
        """Stop serving and release the port; blocks up to serve_forever's 0.5 s poll interval."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    async def aclose(self) -> None:
        """`close` off the event loop, so the poll wait does not stall RPCs."""
        await asyncio.to_thread(self.close)


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: scrapes every few seconds would drown the structured log."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _bearer_only(app: WsgiApp, token: str) -> WsgiApp:
    """`app` behind `Authorization: Bearer <token>`, checked as the gRPC AuthInterceptor does."""
    bearer = BearerToken(token)

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        problem = bearer.problem(environ.get("HTTP_AUTHORIZATION"))
        if problem is None:
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
        )
        return [f"{problem}\n".encode()]

    return guarded
