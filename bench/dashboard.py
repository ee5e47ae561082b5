"""Dashboard benchmark: page load times with 1,000 runs and 100,000 metric events in the registry.

Run: `.venv/bin/python bench/dashboard.py [--runs 1000] [--big-run-events 50000] [--repeats 10]`

It starts a registry and a training service in this process (the dashboard's jobs and devices
pages read the training service), fills the registry through its gRPC API with `--runs` finished
runs of `--events-per-run` metric events each (loss, learning rate, tokens/s every step) plus
one run of `--big-run-events` events, serves the dashboard with uvicorn, and times each page
over HTTP (server time, HTML complete) with a warm-up request first. With the system Chromium
(and Playwright) present it also times opening the 50,000-point run page in a browser until
its stored curves are drawn (the page comes first; its curves follow from /runs/{id}/series).
It prints one line per page: median and 90th percentile in ms, and size.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import uvicorn

from tunix_rt.dashboard.app import create_app
from tunix_rt.dashboard.connections import Settings
from tunix_rt.registry.server import start_registry
from tunix_rt.training.server import start_training
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc, run_pb2

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "datasets" / "reasoning-mini-v1.jsonl"
T = TypeVar("T")
# Events per AppendRunEvents call (the training service batches the same way).
APPEND_BATCH = 1000


class _Loop:
    """An event loop on a thread for the grpc.aio servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)


def _events(first: int, count: int) -> list[run_pb2.RunEvent]:
    return [
        run_pb2.RunEvent(
            sequence=seq,
            step=seq,
            metrics=run_pb2.MetricValues(
                values={
                    "loss": 4.0 / (1 + seq / 500),
                    "learning_rate": 3e-4,
                    "tokens_per_second": 3500.0,
                }
            ),
        )
        for seq in range(first, first + count)
    ]


def _finished_run(stub: Any, dataset: str, run_id: str, events: int) -> None:
    stub.CreateRun(pb.CreateRunRequest(run=run_pb2.Run(dataset=dataset), run_id=run_id))
    name = f"runs/{run_id}"
    stub.TransitionRun(pb.TransitionRunRequest(name=name, state=run_pb2.RUN_STATE_RUNNING))
    for first in range(1, events + 1, APPEND_BATCH):
        count = min(APPEND_BATCH, events - first + 1)
        stub.AppendRunEvents(pb.AppendRunEventsRequest(run=name, events=_events(first, count)))
    stub.TransitionRun(pb.TransitionRunRequest(name=name, state=run_pb2.RUN_STATE_SUCCEEDED))


def fill(address: str, runs: int, events_per_run: int, big_run_events: int) -> str:
    """The dataset, the runs and the big run; returns the dataset id."""
    with grpc.insecure_channel(address) as channel:
        stub: Any = registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        stub.ImportTraces(
            iter(
                [
                    pb.ImportTracesRequest(
                        options=pb.ImportOptions(source="bench"), data=TRACES.read_bytes()
                    )
                ]
            )
        )
        stub.CreateDataset(pb.CreateDatasetRequest(dataset_id="bench", filter={"source": "bench"}))
        started = time.perf_counter()
        for index in range(runs):
            _finished_run(stub, "datasets/bench", f"run-{index:04d}", events_per_run)
        _finished_run(stub, "datasets/bench", "big", big_run_events)
        print(
            f"filled: {runs} runs x {events_per_run} events + 1 run x {big_run_events} events "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return "bench"


@contextmanager
def dashboard(settings: Settings) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def time_pages(url: str, paths: list[str], repeats: int) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        for path in paths:
            first = client.get(path)
            assert first.status_code == 200, (path, first.status_code)
            samples = []
            for _ in range(repeats):
                started = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
            samples.sort()
            p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
            print(
                f"{path:<40} median {statistics.median(samples):7.1f} ms  p90 {p90:7.1f} ms  "
                f"{len(response.content) / 1024:7.1f} KiB",
                flush=True,
            )


def time_browser(url: str, path: str, repeats: int) -> None:
    executable = next((p for b in ("chromium", "chromium-browser") if (p := shutil.which(b))), None)
    if executable is None:
        print("browser: no system Chromium, skipped")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        samples = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            page.goto(f"{url}{path}")
            page.wait_for_selector("#run-charts[data-loaded='true']", timeout=120_000)
            samples.append((time.perf_counter() - started) * 1000)
        browser.close()
    print(f"browser {path}: charts drawn in median {statistics.median(samples[1:]):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--events-per-run", type=int, default=50)
    parser.add_argument("--big-run-events", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    loop = _Loop()
    with tempfile.TemporaryDirectory() as scratch:
        registry = loop.run(start_registry(data_dir=Path(scratch) / "registry"))
        training = loop.run(
            start_training(
                registry_address=registry.address,
                data_dir=Path(scratch) / "training",
                probe_gpus=False,
            )
        )
        dataset = fill(registry.address, args.runs, args.events_per_run, args.big_run_events)
        settings = Settings(registry.address, training.address, "127.0.0.1:1", timeout=60)
        with dashboard(settings) as url:
            time_pages(
                url,
                [
                    "/jobs",
                    "/devices",
                    "/runs",
                    "/runs?limit=1000",
                    f"/runs/run-{args.runs // 2:04d}",
                    "/runs/big",
                    f"/runs/run-{args.runs // 2:04d}/series",
                    "/runs/big/series",
                    "/compare?run=big&run=run-0001&run=run-0002",
                    "/models",
                    "/evaluations",
                    "/datasets",
                    f"/datasets/{dataset}",
                    f"/leaderboard?dataset={dataset}",
                ],
                args.repeats,
            )
            time_browser(url, "/runs/big", min(args.repeats, 5))
        loop.run(training.stop(0))
        loop.run(registry.stop(0))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
