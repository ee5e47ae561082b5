"""What every hand-written service client shares: the channel it owns and how it is dialled, the
generated stub, default deadlines, closing (also as a context manager), and the helpers of their
requests (fields left unset, fresh request ids, list pages)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Generic, Self, TypedDict, TypeVar, Unpack

import grpc
from google.protobuf.message import Message

from tunix_rt.client.channel import ChannelSettings, build_channel

StubT = TypeVar("StubT")
T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """Where a service is found by default and which of its calls gRPC may retry."""

    # The full gRPC service name, e.g. `tunix_rt.v1.RegistryService`.
    service: str
    # The environment variable that holds its address, and the address without one.
    env_var: str
    default_address: str
    idempotent: frozenset[str]


class Deadlines(TypedDict, total=False):
    """`connect`'s keywords passed on to the client; a missing one keeps the client's default."""

    timeout: float | None
    stream_timeout: float | None


class ServiceClient(Generic[StubT]):
    """Owns a channel; unary calls get `timeout` seconds, streams `stream_timeout` (None: no
    deadline). Each subclass names its `ENDPOINT` and sets `_stub` to its generated stub."""

    ENDPOINT: ClassVar[Endpoint]
    _stub: StubT

    def __init__(
        self, channel: grpc.Channel, *, timeout: float | None, stream_timeout: float | None
    ) -> None:
        self._channel = channel
        self.timeout = timeout
        self.stream_timeout = stream_timeout

    @classmethod
    def connect(
        cls,
        address: str | None = None,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        tls: bool = False,
        **deadlines: Unpack[Deadlines],
    ) -> Self:
        """A client on a new channel: `address`, else the service's environment variable
        ($TUNIX_RT_REGISTRY, $TUNIX_RT_TRAINING, $TUNIX_RT_INFERENCE), else its default address
        (127.0.0.1:50051, :50052, :50053); the token and CA fall back to $TUNIX_RT_AUTH_TOKEN and
        $TUNIX_RT_TLS_CA. `tls` uses TLS with the system's root certificates when no CA is given.
        `timeout` and `stream_timeout` default to the client's own."""
        endpoint = cls.ENDPOINT
        settings = ChannelSettings.from_env(
            address,
            env_var=endpoint.env_var,
            default=endpoint.default_address,
            token=token,
            tls_ca=tls_ca,
        )
        if tls:
            settings = dataclasses.replace(settings, tls=True)
        channel = build_channel(settings, {endpoint.service: endpoint.idempotent})
        return cls(channel, **deadlines)

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    @property
    def stub(self) -> StubT:
        """The generated stub, for calls this class does not wrap."""
        return self._stub

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def set_given(message: Message, **values: object) -> None:
    """Sets each field of `message` named in `values` whose value is not None; a None leaves the
    field unset, so the service's default applies."""
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)


def request_id_or_new(given: str | None) -> str:
    """`given`, else a fresh id: one per logical call makes a create safe to retry."""
    return given or uuid.uuid4().hex


def pages(fetch: Callable[[str], tuple[Sequence[T], str]], limit: int | None) -> Iterator[T]:
    """Items of consecutive pages until the last page or `limit` items; `fetch(page_token)`
    returns a page's items and the next page's token ("" after the last)."""
    token, count = "", 0
    while True:
        items, token = fetch(token)
        for item in items:
            if limit is not None and count >= limit:
                return
            yield item
            count += 1
        if not token:
            return


def capped_page_size(size: int, limit: int | None) -> int:
    """The page size to ask for: never more than the caller will read."""
    return max(1, min(size, limit)) if limit else size
