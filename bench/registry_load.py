"""Registry load and durability test: many concurrent clients, then SIGKILL, restart and read back.

Run (SQLite and PostgreSQL, a throwaway cluster started by the wrapper):

    bash scripts/with_postgres.sh .venv/bin/python bench/registry_load.py --database both

or `--database sqlite` without the wrapper; `--clients 64 --seconds 60` are the defaults.

It starts `tunix-rt serve registry` as a real subprocess on loopback, runs `--clients` asyncio
clients (each on its own grpc.aio channel, so its own connection) for `--seconds` doing a mix of
writes (BatchCreateTraces of `--batch` traces from the shipped dataset, CreateDataset, CreateRun +
TransitionRun + AppendRunEvents, CreateModel / CreateModelVersion / SetModelAlias, all with request
ids where the API takes one) and reads (GetTrace, ListTraces pages, ListRunEvents). Every
acknowledged write is recorded. The server's RSS is sampled each second. At the end the registry
is SIGKILLed while the clients are still calling, restarted on the same data, and every
acknowledged write is read back.

Checks (exit status 1 when one fails): no call failed before the kill; every acknowledged write is
readable after the restart, with the acknowledged content; RSS grew by at most `--rss-growth-mib`
from the middle of the run to its end (the first half is warm-up: caches and pools filling); the
server logged nothing at ERROR or above. Calls in flight at the kill fail by design and are only
counted.

One process drives all clients: at 64 clients they use under 0.1 core while the registry's
event loop is saturated. This module is the harness (the registry process, the run, the checks
and the report); the clients and the read-back are in bench/registry_load_clients.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench.*` when run as a script

from bench.registry_load_clients import (  # noqa: E402
    Client,
    Ledger,
    ReadBack,
    Shared,
    Workload,
    trace_rows,
    upload_artifact,
)
from tunix_rt.common.host import describe_cpu  # noqa: E402
from tunix_rt.v1 import registry_service_pb2_grpc  # noqa: E402

POSTGRES_ENV = "TUNIX_RT_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class LoadConfig:
    """One load run against one database."""

    database: str  # "sqlite" or "postgres"
    clients: int = 64
    seconds: float = 60.0
    batch: int = 100  # traces per BatchCreateTraces
    database_url: str | None = None  # required for postgres
    # The allowed RSS growth from the middle to the end; measured: about +1 MiB in 30 s at 64
    # clients on both databases, so this only trips on a real leak.
    rss_growth_mib: float = 16.0
    seed: int = 0


class RegistryProcess:
    """`tunix-rt serve registry` in a subprocess on a loopback port, logging to a file."""

    def __init__(self, data_dir: Path, database_url: str | None, log_path: Path) -> None:
        self.data_dir, self.database_url, self.log_path = data_dir, database_url, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    async def start(self) -> None:
        self.launch()
        await self.wait_serving()

    def launch(self) -> None:
        with socket.socket() as probe:  # a free port; the registry binds it a moment later
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        command = [str(Path(sys.executable).with_name("tunix-rt")), "serve", "registry"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(self.data_dir)]
        if self.database_url:
            command += ["--database-url", self.database_url]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    async def wait_serving(self, within_s: float = 120.0) -> None:
        deadline = time.monotonic() + within_s
        async with grpc.aio.insecure_channel(self.address) as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"registry exited {self.proc.returncode}: {self.log_tail()}")
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"registry not serving after {within_s:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


async def sample_rss(registry: RegistryProcess, samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(registry.rss_mib())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def channel(address: str) -> grpc.aio.Channel:
    # A local subchannel pool: each client gets its own TCP connection, like separate processes.
    return grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


@dataclass
class Report:
    """What one load run measured; `failures` lists the checks that did not hold."""

    config: LoadConfig
    wall_s: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    interrupted: Counter[str] = field(default_factory=Counter)
    acknowledged: Counter[str] = field(default_factory=Counter)
    readable: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    load_average: float = 0.0  # the machine's 1-minute load average at the end of the run
    log_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def drive(registry: RegistryProcess, config: LoadConfig, report: Report) -> list[Ledger]:
    """Runs the clients for `config.seconds`, then SIGKILLs the registry under load."""
    shared = Shared()
    channels = [channel(registry.address) for _ in range(config.clients)]
    stubs: list[Any] = [registry_service_pb2_grpc.RegistryServiceStub(c) for c in channels]  # type: ignore[no-untyped-call]
    work = Workload(
        trace_rows(),
        await upload_artifact(stubs[0]),
        config.batch,
        config.seed,
        uuid.uuid4().hex[:6],
    )
    clients = [Client(i, stub, shared, work) for i, stub in enumerate(stubs)]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(registry, report.rss_mib, stop))
    cpu0, client_cpu0, start = registry.cpu_seconds(), time.process_time(), time.perf_counter()
    tasks = [asyncio.create_task(c.loop(stop)) for c in clients]
    await asyncio.sleep(config.seconds)
    stop.set()
    await sampler
    report.wall_s = time.perf_counter() - start
    report.server_cpu_s = registry.cpu_seconds() - cpu0
    report.client_cpu_s = time.process_time() - client_cpu0
    report.load_average = os.getloadavg()[0]
    shared.killed = True
    registry.kill()  # with the clients' last calls still in flight
    # Each client ends with the operation it was in: its calls fail at once when the socket dies.
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome  # a bug in this script, not a failed call (those are counted)
    for c in channels:
        await c.close()
    report.latencies, report.errors, report.interrupted = (
        shared.latencies,
        shared.errors,
        shared.interrupted,
    )
    return [c.ledger for c in clients]


async def read_all(registry: RegistryProcess, ledgers: list[Ledger], report: Report) -> None:
    """Reads back every client's ledger, eight clients at a time."""
    limit = asyncio.Semaphore(8)
    async with channel(registry.address) as chan:
        stub: Any = registry_service_pb2_grpc.RegistryServiceStub(chan)  # type: ignore[no-untyped-call]
        reader = ReadBack(stub)

        async def one(ledger: Ledger) -> None:
            async with limit:
                await reader.ledger(ledger)

        await asyncio.gather(*(one(ledger) for ledger in ledgers))
    report.acknowledged, report.readable = reader.acknowledged, reader.readable
    report.mismatches = reader.mismatches


def server_log_errors(log_path: Path) -> list[str]:
    """Lines the server logged at ERROR or above (and anything that is not a JSON record, such
    as a traceback printed by a library)."""
    bad = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            level = json.loads(line).get("level", "")
        except (json.JSONDecodeError, AttributeError):
            level = "UNSTRUCTURED"
        if level in ("ERROR", "CRITICAL", "UNSTRUCTURED"):
            bad.append(line[:300])
    return bad


async def run_load(config: LoadConfig) -> Report:
    """One load run: start, drive, SIGKILL, restart, read back, check. The core of this script."""
    report = Report(config)
    with tempfile.TemporaryDirectory(prefix="registry-load-") as tmp:
        log_path = Path(tmp) / "registry.log"
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        url = config.database_url if config.database == "postgres" else None
        registry = RegistryProcess(data_dir, url, log_path)
        try:
            await registry.start()
            ledgers = await drive(registry, config, report)
            await registry.start()  # the same data directory and database
            await read_all(registry, ledgers, report)
        finally:
            registry.stop()
        report.log_errors = server_log_errors(log_path)
    report.failures = checks(report)
    return report


def checks(report: Report) -> list[str]:
    failures = []
    errors = sum(report.errors.values())
    if errors:
        failures.append(f"{errors} calls failed before the kill")
    if not report.acknowledged["traces"]:
        failures.append("no write was acknowledged")
    if report.acknowledged != report.readable or report.mismatches:
        failures.append(
            f"acknowledged {dict(report.acknowledged)} != readable {dict(report.readable)}"
        )
    growth = rss_at(report.rss_mib, -1) - rss_at(report.rss_mib, len(report.rss_mib) // 2)
    if growth > report.config.rss_growth_mib:
        failures.append(f"RSS grew {growth:.1f} MiB from the middle to the end")
    if report.log_errors:
        failures.append(f"{len(report.log_errors)} server log lines at ERROR or unstructured")
    return failures


def rss_at(samples: list[float], index: int) -> float:
    """The median of the five samples around `index` (-1: the last five): one sample can catch a
    transient peak, such as a large response being built, that is not growth."""
    if not samples:
        return 0.0
    first = min(max(0, index % len(samples) - 2), max(0, len(samples) - 5))
    return statistics.median(samples[first : first + 5])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_report(report: Report) -> None:
    c = report.config
    print(f"\n== {c.database}: {c.clients} clients x {c.seconds:g} s, batches of {c.batch} traces")
    print(f"{'operation':<20}{'count':>9}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for method, values in sorted(report.latencies.items()):
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        rate = len(values) / report.wall_s
        print(f"{method:<20}{len(values):>9}{rate:>9.1f}{p50:>9.1f}{p99:>9.1f}")
    total = sum(len(v) for v in report.latencies.values())
    print(f"{'all':<20}{total:>9}{total / report.wall_s:>9.1f}")
    print(f"errors before the kill: {dict(report.errors) or 0}")
    print(f"calls in flight at the SIGKILL (failed by design): {sum(report.interrupted.values())}")
    print(
        f"CPU over the run: server {report.server_cpu_s / report.wall_s:.2f} cores, "
        f"clients {report.client_cpu_s / report.wall_s:.2f} cores; "
        f"machine load average {report.load_average:.1f}"
    )
    for kind in report.acknowledged:
        print(
            f"acknowledged {kind:<15}{report.acknowledged[kind]:>9}  readable after restart "
            f"{report.readable[kind]:>9}"
        )
    print(f"acknowledged writes in all: {sum(report.acknowledged.values())}")
    for line in report.mismatches[:10]:
        print(f"  MISMATCH {line}")
    rss = report.rss_mib
    if rss:
        middle, end = rss_at(rss, len(rss) // 2), rss_at(rss, -1)
        print(
            f"server RSS MiB (1/s; middle, end: median of 5): start {rss[0]:.1f}, "
            f"middle {middle:.1f}, "
            f"end {end:.1f}, max {max(rss):.1f}; middle→end {end - middle:+.1f} "
            f"(bound +{c.rss_growth_mib:g})"
        )
    print(f"server log lines at ERROR or unstructured: {len(report.log_errors)}")
    for line in report.log_errors[:5]:
        print(f"  {line}")
    print("PASS" if not report.failures else "FAIL: " + "; ".join(report.failures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--database-url", default=os.environ.get(POSTGRES_ENV))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=100, help="traces per BatchCreateTraces")
    parser.add_argument("--rss-growth-mib", type=float, default=LoadConfig.rss_growth_mib)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    if "postgres" in databases and not args.database_url:
        parser.error(f"postgres needs --database-url or {POSTGRES_ENV} (scripts/with_postgres.sh)")
    print(f"machine: {describe_cpu()}; Python {sys.version.split()[0]}, grpcio {grpc.__version__}")
    failed = False
    for database in databases:
        config = LoadConfig(
            database=database,
            clients=args.clients,
            seconds=args.seconds,
            batch=args.batch,
            database_url=args.database_url,
            rss_growth_mib=args.rss_growth_mib,
            seed=args.seed,
        )
        report = asyncio.run(run_load(config))
        print_report(report)
        failed = failed or bool(report.failures)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
