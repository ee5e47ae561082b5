"""Metric fan-out benchmark: many subscribers on one job's event stream.

Run: `.venv/bin/python bench/metric_fanout.py [--subscribers 100] [--events 20000]`.

Two measurements in one run:
1. The event hub alone (tunix_rt.training.event_hub.JobEvents) in one process: `--events` events
   emitted as fast as possible to `--subscribers` asyncio readers; delivered events/s across all
   readers, p50/p99 delay from emission to receipt, events lost (must be 0).
2. Through the real services: a registry and a training service on loopback, a tiny job training on
   CPU, and `--subscribers` gRPC StreamJobMetrics readers on one job; delay is receipt time minus
   the event's timestamp, lost = events missing or duplicated per reader (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from tunix_rt.training.event_hub import FellBehind, JobEvents
from tunix_rt.v1 import run_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the service half reuses the tests' stack helpers


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def hub_fanout(subscribers: int, events: int) -> None:
    stored: list[run_pb2.RunEvent] = []

    async def sink(batch: Sequence[run_pb2.RunEvent]) -> None:
        stored.extend(batch)

    async def history(first: int, last: int) -> AsyncIterator[run_pb2.RunEvent]:
        for event in stored:
            if first <= event.sequence <= last:
                yield event

    hub = JobEvents(0, sink, history)
    emitted_at: dict[int, float] = {}
    delays: list[float] = []
    received = [0] * subscribers
    lost = 0

    async def reader(index: int) -> None:
        nonlocal lost
        expected = 1
        async for item in hub.stream(1):
            if isinstance(item, FellBehind):
                lost += events - item.last_delivered
                return
            if item.sequence != expected:
                lost += 1
            expected = item.sequence + 1
            received[index] += 1
            delays.append(time.perf_counter() - emitted_at[item.sequence])

    tasks = [asyncio.create_task(reader(i)) for i in range(subscribers)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for n in range(events):
        emitted_at[n + 1] = time.perf_counter()
        hub.emit(run_pb2.RunEvent(step=n, metrics=run_pb2.MetricValues(values={"loss": 1.0})))
        if n % 100 == 99:
            await asyncio.sleep(0)  # a trainer yields between steps
    await hub.close()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - start
    total = sum(received)
    print(f"hub: {subscribers} subscribers x {events} events in {seconds:.2f} s")
    print(
        f"  delivered {total / seconds:,.0f} events/s; "
        f"delay p50 {percentile(delays, 0.5) * 1e3:.2f} ms, "
        f"p99 {percentile(delays, 0.99) * 1e3:.2f} ms; "
        f"lost {lost + subscribers * events - total}"
    )


def service_fanout(subscribers: int, steps: int) -> None:
    from tests.support import LoopThread
    from tests.training.conftest import import_dataset
    from tests.training.helpers import submit, tiny_job
    from tunix_rt.registry.server import start_registry
    from tunix_rt.training.server import start_training
    from tunix_rt.v1 import registry_service_pb2_grpc, training_service_pb2_grpc
    from tunix_rt.v1 import training_service_pb2 as tpb

    loop = LoopThread()
    with tempfile.TemporaryDirectory() as tmp:
        registry = loop.run(start_registry(data_dir=Path(tmp) / "registry"))
        training = loop.run(
            start_training(
                registry_address=registry.address,
                data_dir=Path(tmp) / "training",
                cpu_slots=1,
                probe_gpus=False,
            )
        )
        new_reg: Any = registry_service_pb2_grpc.RegistryServiceStub
        new_train: Any = training_service_pb2_grpc.TrainingServiceStub
        reg_stub = new_reg(grpc.insecure_channel(registry.address))
        stub = new_train(grpc.insecure_channel(training.address))
        dataset = import_dataset(reg_stub, "bench")
        job = submit(stub, tiny_job(dataset, max_steps=steps, checkpoint_interval_steps=0))
        results: list[tuple[list[int], list[float]]] = []

        def read() -> None:
            sequences: list[int] = []
            delays: list[float] = []
            for response in stub.StreamJobMetrics(
                tpb.StreamJobMetricsRequest(name=job.name, from_sequence=1), timeout=600
            ):
                event = response.run_event
                sequences.append(event.sequence)
                delays.append(time.time() - event.time.ToMicroseconds() / 1e6)
            results.append((sequences, delays))

        threads = [threading.Thread(target=read) for _ in range(subscribers)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
        loop.run(training.stop(0))
        loop.run(registry.stop(0))
    loop.close()
    reference = max(len(s) for s, _ in results)
    lost = sum(
        (reference - len(s)) + sum(1 for a, b in itertools.pairwise(s) if b != a + 1)
        for s, _ in results
    )
    live = [d for _, delays in results for d in delays]
    total = sum(len(s) for s, _ in results)
    print(
        f"service: {subscribers} StreamJobMetrics subscribers on one {steps}-step job, "
        f"{seconds:.1f} s"
    )
    print(
        f"  {reference} events each; delivered {total / seconds:,.0f} events/s overall; "
        f"delay p50 {percentile(live, 0.5) * 1e3:.1f} ms, "
        f"p99 {percentile(live, 0.99) * 1e3:.1f} ms "
        f"(includes replay of history to late joiners); lost or duplicated {lost}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(hub_fanout(args.subscribers, args.events))
    service_fanout(args.subscribers, args.steps)


if __name__ == "__main__":
    main()
