"""The simulated users of bench/registry_load.py, and the read-back of what they were told.

A `Client` loops over a weighted mix of registry calls (MIX) through the generated grpc.aio stub
and records in its `Ledger` every write the registry acknowledged; `ReadBack` later reads each
acknowledged write and counts, per kind, how many are readable with the acknowledged content.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from tunix_rt.v1 import model_pb2, run_pb2, trace_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
TRACES_FILE = ROOT / "datasets" / "reasoning-train-v1.jsonl"
CALL_TIMEOUT_S = 30.0  # the Python client's default unary deadline
EVENTS_PER_APPEND = 10  # a training run flushes its metrics in small batches
EVENTS_PER_RUN = 100
VERSIONS_PER_MODEL = 10
# The operation mix, Client methods by weight: reads dominate, as they do for a registry behind
# training and inference; writes cover every kind of resource a training pipeline creates.
MIX = {"write_traces": 10, "write_dataset": 3, "write_run_events": 12, "write_model": 3}
MIX |= {"read_trace": 40, "read_trace_page": 16, "read_run_events": 16}
S = run_pb2.RunState


@dataclass
class RunRecord:
    """A run as acknowledged: its last stored sequence and state, and a state being set."""

    last_sequence: int = 0
    state: run_pb2.RunState = S.RUN_STATE_QUEUED
    pending_state: run_pb2.RunState | None = None


@dataclass
class ModelRecord:
    """A model's acknowledged versions and aliases; an alias move in flight may have landed."""

    versions: list[int] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)


@dataclass
class Ledger:
    """Everything the server acknowledged to one client."""

    source: str
    traces: dict[str, str] = field(default_factory=dict)  # name -> content_hash
    datasets: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (count, hash)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    models: dict[str, ModelRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """What every client of one run writes: trace rows to batch, an artifact for model versions."""

    rows: list[trace_pb2.Trace]
    artifact: str
    batch: int
    seed: int
    tag: str  # unique per run, so sources and ids never collide with an earlier run's


class CallFailed(Exception):
    """A call failed; already counted, the operation stops."""


@dataclass
class Shared:
    """What the clients share: timings, errors, names to read, and the kill flag."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    interrupted: Counter[str] = field(default_factory=Counter)  # failed because of the kill
    trace_names: list[str] = field(default_factory=list)
    run_names: list[str] = field(default_factory=list)
    killed: bool = False

    async def call(self, method: str, awaitable: Awaitable[Any]) -> Any:
        """Awaits one RPC, recording its latency or its status code."""
        start = time.perf_counter()
        try:
            response = await awaitable
        except grpc.aio.AioRpcError as err:
            if self.killed:
                self.interrupted[method] += 1
            else:
                self.errors[(method, err.code().name)] += 1
            raise CallFailed from err
        self.latencies.setdefault(method, []).append(time.perf_counter() - start)
        return response


def trace_rows() -> list[trace_pb2.Trace]:
    """The shipped 2,000-trace dataset as Trace messages: realistic sizes and metadata."""
    with TRACES_FILE.open() as handle:
        return [json_format.ParseDict(json.loads(line), trace_pb2.Trace()) for line in handle]


class Client:
    """One simulated user of the registry: picks an operation from MIX until told to stop."""

    def __init__(self, index: int, stub: Any, shared: Shared, work: Workload) -> None:
        self.stub = stub
        self.shared = shared
        self.rows = work.rows
        self.artifact = work.artifact
        self.batch = work.batch
        self.rng = random.Random(work.seed * 1000 + index)
        self.ledger = Ledger(source=f"load-{work.tag}-c{index}")
        self.batches: list[list[str]] = []
        self.dataset = ""
        self.run: str | None = None
        self.model: str | None = None
        self.page_token = ""

    async def call(self, method: str, request: Any) -> Any:
        """One unary call with the Python client's default deadline, timed by `shared`."""
        return await self.shared.call(
            method, getattr(self.stub, method)(request, timeout=CALL_TIMEOUT_S)
        )

    async def loop(self, stop: asyncio.Event) -> None:
        names, weights = list(MIX), list(MIX.values())
        await self.guarded(self.write_traces)  # every client starts with data to read
        while not stop.is_set():
            await self.guarded(getattr(self, self.rng.choices(names, weights)[0]))

    @staticmethod
    async def guarded(op: Callable[[], Awaitable[None]]) -> None:
        # A failed call is counted by Shared.call; the client goes on with its next operation.
        with contextlib.suppress(CallFailed):
            await op()

    async def write_traces(self) -> None:
        traces = []
        for _ in range(self.batch):
            trace = trace_pb2.Trace()
            trace.CopyFrom(self.rng.choice(self.rows))
            trace.source = self.ledger.source
            trace.meta.update({"load_client": self.ledger.source, "load_nonce": uuid.uuid4().hex})
            traces.append(trace)
        request = pb.BatchCreateTracesRequest(traces=traces, request_id=uuid.uuid4().hex)
        response = await self.call("BatchCreateTraces", request)
        names = [t.name for t in response.traces]
        self.ledger.traces.update((t.name, t.content_hash) for t in response.traces)
        self.batches = [*self.batches[-4:], names]
        self.shared.trace_names.extend(names)

    async def write_dataset(self) -> None:
        members = [name for batch in self.batches for name in batch]
        if not members:
            return
        dataset_id = f"{self.ledger.source}-{uuid.uuid4().hex[:8]}"
        request = pb.CreateDatasetRequest(
            dataset_id=dataset_id, request_id=uuid.uuid4().hex, description="load test"
        )
        request.trace_names.names.extend(members)
        request.split.eval_fraction = 0.1
        response = await self.call("CreateDataset", request)
        dataset = response.dataset
        self.ledger.datasets[dataset.name] = (dataset.stats.trace_count, dataset.content_hash)
        self.dataset = dataset.name

    async def transition(self, name: str, record: RunRecord, state: run_pb2.RunState) -> None:
        record.pending_state = state
        request = pb.TransitionRunRequest(name=name, state=state, reason="load test")
        await self.call("TransitionRun", request)
        record.state, record.pending_state = state, None

    async def start_run(self) -> str:
        run = run_pb2.Run(display_name="load", dataset=self.dataset, owner=self.ledger.source)
        run.config.update({"preset": "llama3-tiny", "learning_rate": 3e-4, "steps": 100})
        request = pb.CreateRunRequest(run=run, request_id=uuid.uuid4().hex)
        response = await self.call("CreateRun", request)
        name: str = response.run.name
        self.ledger.runs[name] = RunRecord()
        self.shared.run_names.append(name)
        await self.transition(name, self.ledger.runs[name], S.RUN_STATE_RUNNING)
        return name

    async def write_run_events(self) -> None:
        """A training run's metrics, appended a few at a time, like the training service does."""
        if self.run is None:
            self.run = await self.start_run()
        name, record = self.run, self.ledger.runs[self.run]
        first = record.last_sequence + 1
        events = [
            run_pb2.RunEvent(
                sequence=seq,
                step=seq,
                metrics=run_pb2.MetricValues(values={"loss": 3.0 / seq, "lr": 3e-4}),
            )
            for seq in range(first, first + EVENTS_PER_APPEND)
        ]
        request = pb.AppendRunEventsRequest(run=name, events=events)
        response = await self.call("AppendRunEvents", request)
        record.last_sequence = response.last_sequence
        if record.last_sequence >= EVENTS_PER_RUN:
            self.run = None
            await self.transition(name, record, S.RUN_STATE_SUCCEEDED)

    async def create_model(self) -> str:
        request = pb.CreateModelRequest(
            model_id=f"{self.ledger.source}-{uuid.uuid4().hex[:8]}",
            labels={"base": "llama3-tiny"},
            request_id=uuid.uuid4().hex,
        )
        response = await self.call("CreateModel", request)
        name: str = response.model.name
        self.ledger.models[name] = ModelRecord()
        return name

    async def write_model(self) -> None:
        """A new version tagged `candidate`, and `production` moved to the one before."""
        if self.model is None:
            self.model = await self.create_model()
        name, record = self.model, self.ledger.models[self.model]
        version = model_pb2.ModelVersion(artifact=self.artifact, description="load test")
        version.provenance.update({"run": self.run or "", "dataset": self.dataset})
        record.pending["candidate"] = len(record.versions) + 1
        create = pb.CreateModelVersionRequest(
            parent=name, model_version=version, aliases=["candidate"], request_id=uuid.uuid4().hex
        )
        response = await self.call("CreateModelVersion", create)
        number = response.model_version.version
        record.versions.append(number)
        record.aliases["candidate"] = number
        if len(record.versions) > 1:
            record.pending["production"] = record.versions[-2]
            alias = pb.SetModelAliasRequest(model=name, alias="production", version=number - 1)
            await self.call("SetModelAlias", alias)
            record.aliases["production"] = number - 1
        record.pending.clear()
        if len(record.versions) >= VERSIONS_PER_MODEL:
            self.model = None

    async def read_trace(self) -> None:
        if not self.shared.trace_names:
            return
        name = self.rng.choice(self.shared.trace_names)
        await self.call("GetTrace", pb.GetTraceRequest(name=name))

    async def read_trace_page(self) -> None:
        request = pb.ListTracesRequest(
            filter=trace_pb2.TraceFilter(source=self.ledger.source),
            page_size=100,
            page_token=self.page_token,
        )
        response = await self.call("ListTraces", request)
        self.page_token = response.next_page_token

    async def read_run_events(self) -> None:
        if not self.shared.run_names:
            return
        run = self.rng.choice(self.shared.run_names)
        request = pb.ListRunEventsRequest(run=run, page_size=100)
        await self.call("ListRunEvents", request)


async def upload_artifact(stub: Any) -> str:
    """A small stored artifact that every model version points at."""
    data = b"weights " + uuid.uuid4().bytes

    async def parts() -> Any:
        yield pb.UploadArtifactRequest(header=pb.ArtifactHeader(content_type="text/plain"))
        yield pb.UploadArtifactRequest(chunk=data)

    response = await stub.UploadArtifact(parts(), timeout=CALL_TIMEOUT_S)
    return str(response.artifact.name)


async def pages(call: Callable[[str], Awaitable[Any]]) -> list[Any]:
    """Every response of a paged list, following next_page_token."""
    responses, token = [], ""
    while True:
        response = await call(token)
        responses.append(response)
        token = response.next_page_token
        if not token:
            return responses


class ReadBack:
    """Reads the acknowledged writes of one client after the restart and counts, per kind, how
    many were acknowledged and how many are readable with the acknowledged content."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.acknowledged: Counter[str] = Counter()
        self.readable: Counter[str] = Counter()
        self.mismatches: list[str] = []

    def tally(self, kind: str, name: str, ok: bool, why: str) -> None:
        self.acknowledged[kind] += 1
        if ok:
            self.readable[kind] += 1
        else:
            self.mismatches.append(f"{kind} {name}: {why}")

    async def get(self, method: str, request: Any) -> Any:
        """A unary read; None when it fails (counted as unreadable by the caller)."""
        try:
            return await getattr(self.stub, method)(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            self.mismatches.append(f"{method} {request}: {err.code().name}")
            return None

    async def ledger(self, ledger: Ledger) -> None:
        def list_traces(token: str) -> Any:
            flt = trace_pb2.TraceFilter(source=ledger.source)
            request = pb.ListTracesRequest(filter=flt, page_size=1000, page_token=token)
            return self.stub.ListTraces(request, timeout=CALL_TIMEOUT_S)

        stored = {tr.name: tr.content_hash for r in await pages(list_traces) for tr in r.traces}
        for name, content_hash in ledger.traces.items():
            why = "missing" if name not in stored else "content differs"
            self.tally("traces", name, stored.get(name) == content_hash, why)
        for name, expected in ledger.datasets.items():
            response = await self.get("GetDataset", pb.GetDatasetRequest(name=name))
            found = response and (response.dataset.stats.trace_count, response.dataset.content_hash)
            self.tally("datasets", name, found == expected, f"{found} != {expected}")
        for name, run in ledger.runs.items():
            await self.run(name, run)
        for name, model in ledger.models.items():
            await self.model(name, model)

    async def run(self, name: str, record: RunRecord) -> None:
        def list_events(token: str) -> Any:
            request = pb.ListRunEventsRequest(run=name, page_size=10_000, page_token=token)
            return self.stub.ListRunEvents(request, timeout=CALL_TIMEOUT_S)

        response = await self.get("GetRun", pb.GetRunRequest(name=name))
        state = response and response.run.state
        # A transition in flight at the kill may or may not have been stored.
        ok = response is not None and state in (record.state, record.pending_state)
        self.tally("runs", name, ok, f"state {state}, acknowledged {record.state}")
        sequences = {e.sequence for r in await pages(list_events) for e in r.events}
        for sequence in range(1, record.last_sequence + 1):
            self.tally("run events", f"{name}#{sequence}", sequence in sequences, "missing")

    async def model(self, name: str, record: ModelRecord) -> None:
        response = await self.get("GetModel", pb.GetModelRequest(name=name))
        self.tally("models", name, response is not None, "missing")
        aliases = dict(response.model.aliases) if response else {}
        for number in record.versions:
            version_name = f"{name}/versions/{number}"
            found = await self.get("GetModelVersion", pb.GetModelVersionRequest(name=version_name))
            self.tally("model versions", version_name, found is not None, "missing")
        for alias, number in record.aliases.items():
            # An alias move in flight at the kill may or may not have been stored.
            ok = aliases.get(alias) in (number, record.pending.get(alias))
            self.tally("model aliases", f"{name}@{alias}", ok, f"at {aliases.get(alias)}")
