"""The training service on a Ray cluster against the same service with local worker processes,
and a job spread over two Ray nodes against the same job on one, in one run.

Run: `.venv/bin/python bench/ray_overhead.py [--steps 40] [--rounds 2] [--backend torch|jax]
[--phases] [--no-scale-out]`.

It starts a Ray cluster of two 1-CPU nodes on 127.0.0.1 (ray.cluster_utils.Cluster), a registry
and two training services on it: `local` (worker processes here, two 1-core CPU slots) and `ray`
(`--ray` that cluster). Every job trains llama3-tiny with one thread per CPU on the torch backend
(`--backend jax`: the JAX backend; its 2-node job is two processes joined by jax.distributed).

- overhead: the same 1-CPU job on each service, submit to SUCCEEDED (worker start, dataset
  export, training, upload, registration); local ÷ ray wall time (1.0 = no overhead; aim ≥ 0.95).
- scale-out: a `cpu:2` job (one rank per node, data parallel over gloo) against `cpu:1` (one node),
  same global batch; the ratio of their median training tokens/s (steps after the first).
Rounds alternate the contenders.

`--phases` also prints where each overhead job's time went (each job's moments, then each
phase's median per service), from what the system records anyway: the job's run events in the
registry (stamped by the service as it emits them: the state changes, the worker's first log
line, each step's metrics, the registration) and the mtime of the spec file each executor writes
just before it starts the worker process. `--no-scale-out` runs the overhead jobs alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import LoopThread  # noqa: E402
from tests.training.conftest import import_dataset  # noqa: E402
from tests.training.helpers import TERMINAL, history, submit, tiny_job, wait_for  # noqa: E402
from tunix_rt.common.host import cpu_model  # noqa: E402
from tunix_rt.registry.server import start_registry  # noqa: E402
from tunix_rt.training.executors.ray_cluster import LOOPBACK, import_ray  # noqa: E402
from tunix_rt.training.server import start_training  # noqa: E402
from tunix_rt.v1 import registry_service_pb2_grpc, run_pb2, training_service_pb2_grpc  # noqa: E402

# The phases of a job's life --phases reports, in order; each is timed from submission.
PHASES = (
    "scheduled",  # the RUNNING state change: devices allocated
    "worker started",  # the spec file written just before the worker process is started
    "first line",  # the worker's first log line (dataset read) reached the service
    "first step",  # step 1's metrics reached the service
    "last step",  # the last step's metrics reached the service
    "registered",  # the worker registered the model version (its last line)
    "SUCCEEDED",  # the terminal state change
)


def phases(registry: Any, run: str, workdir: Path) -> list[float]:
    """Seconds from submission to each of PHASES, for a job that succeeded."""
    events = history(registry, run)

    def at(event: Any) -> float:
        return float(event.time.seconds + event.time.nanos / 1e9)

    def state(to: int) -> float:
        return next(
            at(e)
            for e in events
            if e.WhichOneof("payload") == "state_change" and e.state_change.to_state == to
        )

    logs = [e for e in events if e.WhichOneof("payload") == "log"]
    steps = [at(e) for e in events if e.WhichOneof("payload") == "metrics"]
    submitted = state(run_pb2.RUN_STATE_QUEUED)
    moments = [
        state(run_pb2.RUN_STATE_RUNNING),
        min(p.stat().st_mtime for p in workdir.glob("spec*.json")),
        at(logs[0]),
        steps[0],
        steps[-1],
        next(at(e) for e in logs if e.log.message.startswith("registered ")),
        state(run_pb2.RUN_STATE_SUCCEEDED),
    ]
    return [m - submitted for m in moments]


def print_phases(timings: dict[str, list[list[float]]]) -> None:
    """Each phase's median moment and median time since the one before, per service."""
    print("phase (median s since submission; since the phase before)")
    for index, phase in enumerate(PHASES):
        cells = []
        for name, jobs in timings.items():
            moment = statistics.median(j[index] for j in jobs)
            gap = statistics.median(j[index] - (j[index - 1] if index else 0.0) for j in jobs)
            cells.append(f"{name} {moment:5.2f} (+{gap:.2f})")
        print(f"  {phase:<15} {'   '.join(cells)}")


def run_job(
    stub: Any, registry: Any, dataset: str, devices: str, steps: int, name: str, backend: str
) -> Any:
    """Wall seconds from submission to SUCCEEDED, and the median tokens/s of its steps."""
    job = tiny_job(
        dataset,
        backend,
        devices=devices,
        max_steps=steps,
        batch_size=8,
        checkpoint_interval_steps=0,
    )
    start = time.perf_counter()
    submitted = submit(stub, job, name)
    done = wait_for(stub, submitted.name, TERMINAL, timeout=900)
    seconds = time.perf_counter() - start
    if done.state != run_pb2.RUN_STATE_SUCCEEDED:
        raise SystemExit(f"{name}: {done.error.message}")
    rates = [
        e.metrics.values["tokens_per_second"]
        for e in history(registry, f"runs/{name}")
        if e.WhichOneof("payload") == "metrics" and "tokens_per_second" in e.metrics.values
    ]
    return seconds, statistics.median(rates[1:] or rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--phases", action="store_true", help="time each overhead job's phases")
    parser.add_argument("--backend", choices=("torch", "jax"), default="torch")
    parser.add_argument(
        "--no-scale-out", action="store_true", help="only the overhead jobs (no cpu:2 jobs)"
    )
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} cores", flush=True)
    import_ray(f"{LOOPBACK}:0")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    cluster.wait_for_nodes()
    loop = LoopThread()
    data = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    registry = loop.run(start_registry(data_dir=data / "registry"))
    common: dict[str, Any] = {"registry_address": registry.address, "probe_gpus": False}
    local = loop.run(start_training(data_dir=data / "local", cpu_slots=2, **common))
    ray = loop.run(
        start_training(data_dir=data / "ray", ray_address=cluster.address, **common), timeout=120
    )
    registry_stub: Any = registry_service_pb2_grpc.RegistryServiceStub(  # type: ignore[no-untyped-call]
        grpc.insecure_channel(registry.address)
    )
    dataset = import_dataset(registry_stub, "bench")
    stubs = {
        name: training_service_pb2_grpc.TrainingServiceStub(grpc.insecure_channel(s.address))  # type: ignore[no-untyped-call]
        for name, s in (("local", local), ("ray", ray))
    }
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    rates: dict[str, list[float]] = {"1 node": [], "2 nodes": []}
    timings: dict[str, list[list[float]]] = {"local": [], "ray": []}
    for round_ in range(args.rounds):
        for name in ("local", "ray") if round_ % 2 == 0 else ("ray", "local"):
            seconds, _ = run_job(
                stubs[name],
                registry_stub,
                dataset,
                "cpu:1",
                args.steps,
                f"{name}-{round_}",
                args.backend,
            )
            walls[name].append(seconds)
            print(f"round {round_} {name}: {seconds:.1f} s", flush=True)
            if args.phases:
                job = f"{name}-{round_}"
                moments = phases(registry_stub, f"runs/{job}", data / name / "jobs" / job)
                timings[name].append(moments)
                print(
                    "  " + ", ".join(f"{p} {m:.2f}" for p, m in zip(PHASES, moments, strict=True))
                )
        for label, devices in (
            () if args.no_scale_out else (("1 node", "cpu:1"), ("2 nodes", "cpu:2"))
        ):
            _, rate = run_job(
                stubs["ray"],
                registry_stub,
                dataset,
                devices,
                args.steps,
                f"dp{devices[-1]}-{round_}",
                args.backend,
            )
            rates[label].append(rate)
            print(f"round {round_} {label}: {rate:,.0f} tokens/s", flush=True)
    overhead = [a / b for a, b in zip(walls["local"], walls["ray"], strict=True)]
    print(f"local ÷ ray wall time per round: {', '.join(f'{r:.3f}' for r in overhead)}")
    print(
        f"median local {statistics.median(walls['local']):.1f} s, ray "
        f"{statistics.median(walls['ray']):.1f} s, ratio {statistics.median(overhead):.3f}"
    )
    if args.phases:
        print_phases(timings)
    if rates["1 node"]:
        scale = [b / a for a, b in zip(rates["1 node"], rates["2 nodes"], strict=True)]
        print(
            f"2 nodes ÷ 1 node tokens/s per round: {', '.join(f'{r:.3f}' for r in scale)}; "
            f"median 1 node {statistics.median(rates['1 node']):,.0f}, 2 nodes "
            f"{statistics.median(rates['2 nodes']):,.0f}, ratio {statistics.median(scale):.3f}"
        )
    loop.run(ray.stop(0))
    loop.run(local.stop(0))
    loop.run(registry.stop(0))
    loop.close()
    cluster.shutdown()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
