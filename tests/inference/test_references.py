"""Model references resolved through the real registry: a burst of concurrent requests for the
same movable reference (`name@alias`) costs one registry call, its answer or its error shared."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.inference.conftest import JAX_WARNINGS, MODEL, InferenceStack
from tunix_rt.common.errors import NotFound
from tunix_rt.inference.references import MOVABLE_TTL_S, Resolver
from tunix_rt.v1 import inference_pb2, inference_service_pb2

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


def test_registry_and_inference_answer_while_the_loops_thread_pool_is_taken(
    inference_stack: InferenceStack,
) -> None:
    """The registry and the inference service in one process and event loop, as `tunix-rt up`
    runs them, with asyncio's default thread pool taken by other work (any co-hosted code's
    `asyncio.to_thread`). Each service runs its blocking work on threads of its own: with one
    shared pool, 16 streams for an alias whose cached answer had expired took every thread to
    wait on the registry, which waited for a thread to answer (`bench/inference_service.py`:
    rounds stalled for minutes, in 30 s registry deadlines)."""
    request = inference_service_pb2.GenerateRequest(
        model=f"{MODEL}@candidate",
        prompt="Tom has",
        raw_prompt=True,
        sampling=inference_pb2.SamplingParams(max_new_tokens=2),
    )
    inference_stack.stub.Generate(request, timeout=60)  # loaded once
    time.sleep(MOVABLE_TTL_S + 0.1)  # the alias is asked for again
    release = threading.Event()

    async def take_the_default_pool() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(min(32, (os.cpu_count() or 1) + 4)):  # its workers
            loop.run_in_executor(None, release.wait)

    inference_stack.loop.run(take_the_default_pool())
    try:
        answer = inference_stack.stub.Generate(request, timeout=20)
        assert answer.summary.usage.completion_tokens > 0
        assert answer.model_version == inference_stack.versions[0].name
    finally:
        release.set()
