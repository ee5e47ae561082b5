"""Model references resolved through the real registry: a burst of concurrent requests for the
same movable reference (`name@alias`) costs one registry call, its answer or its error shared."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.inference.conftest import JAX_WARNINGS, MODEL, InferenceStack
from tunix_rt.common.errors import NotFound
from tunix_rt.inference.references import Resolver

pytestmark = JAX_WARNINGS


class CountingRegistry:
    """The registry stub, counting ResolveModelVersion calls; each takes 0.2 s longer, so the
    burst's requests all arrive while the first one is being answered."""

    def __init__(self, stub: Any) -> None:
        self.stub, self.calls = stub, 0
        self._lock = threading.Lock()

    def ResolveModelVersion(self, request: Any, timeout: float) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(0.2)
        return self.stub.ResolveModelVersion(request, timeout=timeout)


def burst(resolver: Resolver, reference: str) -> list[Any]:
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(resolver.resolve, reference) for _ in range(16)]
        return [f.exception() or f.result()[0].model_version for f in futures]


def test_a_burst_for_one_alias_asks_the_registry_once(inference_stack: InferenceStack) -> None:
    registry = CountingRegistry(inference_stack.registry_stub)
    resolver = Resolver(registry)
    answers = burst(resolver, f"{MODEL}@candidate")
    assert answers == [inference_stack.versions[0].name] * 16
    assert registry.calls == 1
    time.sleep(1.1)  # past the TTL: the next burst asks again, once
    assert burst(resolver, f"{MODEL}@candidate") == answers
    assert registry.calls == 2


def test_a_burst_for_a_missing_alias_shares_one_not_found(inference_stack: InferenceStack) -> None:
    registry = CountingRegistry(inference_stack.registry_stub)
    answers = burst(Resolver(registry), f"{MODEL}@nowhere")
    assert all(isinstance(a, NotFound) for a in answers), answers
    assert registry.calls == 1
    with pytest.raises(NotFound):  # an error is not kept: the next request asks again
        Resolver(registry).resolve(f"{MODEL}@nowhere")
    assert registry.calls == 2
