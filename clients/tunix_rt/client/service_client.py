"""What every hand-written service client shares: the channel it owns, default deadlines, and
closing (also as a context manager)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import grpc


class ServiceClient:
    """Owns a channel; unary calls get `timeout` seconds, streams `stream_timeout` (None: no
    deadline)."""

    def __init__(
        self, channel: grpc.Channel, *, timeout: float | None, stream_timeout: float | None
    ) -> None:
        self._channel = channel
        self.timeout = timeout
        self.stream_timeout = stream_timeout

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

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
