"""The kept GetTrace responses: bounded by bytes, least recently read evicted first."""

from __future__ import annotations

import pytest

from tunix_rt.common.config import ConfigError
from tunix_rt.registry.trace_responses import (
    DEFAULT_TRACE_CACHE_BYTES,
    TRACE_CACHE_BYTES_ENV,
    TraceResponses,
    cache_bytes_from_env,
)


def test_least_recently_read_goes_first_and_the_bound_holds() -> None:
    kept = TraceResponses(max_bytes=30)
    kept.put("a", b"x" * 10)
    kept.put("b", b"y" * 10)
    kept.put("c", b"z" * 10)
    assert kept.get("a") == b"x" * 10  # a is now the most recent
    kept.put("d", b"w" * 10)  # 40 bytes: b, the least recently read, goes
    assert kept.get("b") is None
    assert [kept.get(k) is not None for k in "acd"] == [True, True, True]
    kept.put("e", b"v" * 25)  # needs 25 of 30: everything older goes
    assert len(kept) == 1 and kept.get("e") == b"v" * 25
    kept.put("f", b"u" * 31)  # larger than the whole cache: not kept, nothing evicted
    assert kept.get("f") is None and kept.get("e") is not None
    kept.drop("e")
    assert len(kept) == 0


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    kept = TraceResponses(max_bytes=20)
    kept.put("a", b"x" * 15)
    kept.put("a", b"x" * 15)
    kept.put("b", b"y" * 5)
    assert kept.get("a") is not None and kept.get("b") is not None


def test_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_CACHE_BYTES_ENV, raising=False)
    assert cache_bytes_from_env() == DEFAULT_TRACE_CACHE_BYTES
    monkeypatch.setenv(TRACE_CACHE_BYTES_ENV, "0")
    assert cache_bytes_from_env() == 0
    monkeypatch.setenv(TRACE_CACHE_BYTES_ENV, "-5")
    with pytest.raises(ConfigError, match=TRACE_CACHE_BYTES_ENV):
        cache_bytes_from_env()
