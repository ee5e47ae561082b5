"""The dashboard's clients of the three services, and what a failed call shows.

A page reads through `Connections.get` and `Connections.items`: an unreachable service (or any
failure but NOT_FOUND and INVALID_ARGUMENT) leaves None or nothing in the page and a banner
naming the service on top of it, so the rest of the page keeps working; those two raise
`PageNotFound`, which becomes a 404 page. Nothing of an exception beyond the client's one-line
description reaches the browser.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from tunix_rt.client import InferenceClient, RegistryClient, TrainingClient, describe_rpc_error
from tunix_rt.client.service_client import ServiceClient

T = TypeVar("T")

# Codes that mean the page's resource is not there: unknown, or an id no resource can have.
_MISSING = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)

# Codes that mean the service was not reached at all (down, wrong address, overloaded).
_UNREACHED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class PageNotFound(Exception):
    """The page's resource does not exist; the application answers 404 with `message`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Settings:
    """Where the services are and how to call them: the `tunix-rt` global options."""

    registry: str
    training: str
    inference: str
    token: str | None = None
    tls_ca: Path | None = None
    # Deadline of each unary call in seconds; pages wait at most this long for a slow service.
    timeout: float = 10.0


@dataclass
class Problems:
    """The banners of one page: one line per service that failed while it was rendered."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)


class Connections:
    """One client per service, connected on first use and shared by every request (gRPC channels
    are thread-safe and reconnect by themselves after a service comes back)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._clients: dict[str, ServiceClient[Any]] = {}

    def _client(self, service: str, client_type: type[ServiceClient[Any]]) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                client = client_type.connect(
                    getattr(self.settings, service),
                    token=self.settings.token,
                    tls_ca=self.settings.tls_ca,
                    timeout=self.settings.timeout,
                )
                self._clients[service] = client
            return client

    @property
    def registry(self) -> RegistryClient:
        client: RegistryClient = self._client("registry", RegistryClient)
        return client

    @property
    def training(self) -> TrainingClient:
        client: TrainingClient = self._client("training", TrainingClient)
        return client

    @property
    def inference(self) -> InferenceClient:
        client: InferenceClient = self._client("inference", InferenceClient)
        return client

    def get(self, service: str, fetch: Callable[[], T], problems: Problems) -> T | None:
        """`fetch()`, or None with a banner in `problems` when it fails; PageNotFound when the
        service says the resource does not exist, or that its id (from the URL) is malformed."""
        try:
            return fetch()
        except grpc.RpcError as error:
            if error.code() in _MISSING:
                raise PageNotFound(describe_rpc_error(error)) from None
            problems.add(self.describe(service, error))
            return None

    def items(self, service: str, fetch: Callable[[], Iterable[T]], problems: Problems) -> list[T]:
        """What `fetch()` iterates, read to the end here (the client's lists are lazy), or an
        empty list with a banner in `problems` when a call fails."""
        found = self.get(service, lambda: list(fetch()), problems)
        return found if found is not None else []

    def describe(self, service: str, error: grpc.RpcError) -> str:
        """The banner line of a failed call to `service`."""
        address = getattr(self.settings, service)
        if error.code() in _UNREACHED:
            return (
                f"The {service} service at {address} is not reachable "
                f"({error.code().name}); what it holds is missing from this page."
            )
        return f"The {service} service at {address} failed: {describe_rpc_error(error)}"

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
