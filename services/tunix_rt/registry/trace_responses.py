"""Recently read traces, kept as their serialized GetTraceResponse.

A stored trace never changes (its content is fixed at insert; only a delete ends it), so its
response bytes can be kept and served again as long as the trace still exists. Building a
response costs ~100 µs of Python (two JSON decodes, the `meta` Struct, the steps, the proto);
re-reading kept bytes ~5 µs. The existence check stays on every read (one indexed point query,
as cheap as a read): a trace deleted through any registry replica sharing the database stops
being served at once, so the cache is correct behind several replicas, not only one.

Bounded by bytes, least recently read evicted first; 0 bytes turns it off.
"""

from __future__ import annotations

import collections
import os
import threading

from tunix_rt.common.config import ConfigError

TRACE_CACHE_BYTES_ENV = "TUNIX_RT_TRACE_CACHE_BYTES"
DEFAULT_TRACE_CACHE_BYTES = 64 << 20  # ~40,000 typical traces


def cache_bytes_from_env() -> int:
    """TUNIX_RT_TRACE_CACHE_BYTES, else the default; ConfigError unless a number ≥ 0."""
    raw = os.environ.get(TRACE_CACHE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_TRACE_CACHE_BYTES
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(
            f"{TRACE_CACHE_BYTES_ENV} must be a number of bytes (0 = off), got {raw!r}"
        )
    return int(raw)


class TraceResponses:
    """uid → serialized GetTraceResponse, least recently used out past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the servicer reads on the event loop; tests from threads

    def get(self, uid: str) -> bytes | None:
        with self._lock:
            kept = self._kept.get(uid)
            if kept is not None:
                self._kept.move_to_end(uid)
            return kept

    def put(self, uid: str, response: bytes) -> None:
        if len(response) > self.max_bytes:
            return
        with self._lock:
            old = self._kept.pop(uid, None)
            if old is not None:
                self._bytes -= len(old)
            self._kept[uid] = response
            self._bytes += len(response)
            while self._bytes > self.max_bytes:
                _, evicted = self._kept.popitem(last=False)
                self._bytes -= len(evicted)

    def drop(self, uid: str) -> None:
        with self._lock:
            old = self._kept.pop(uid, None)
            if old is not None:
                self._bytes -= len(old)

    def __len__(self) -> int:
        return len(self._kept)
