"""Sweep overhead through a real registry and training service, in one run.

Run: `.venv/bin/python bench/sweep.py [--trials 3] [--steps 24] [--prune-trials 6]`.

(a) trials/hour: a sweep of K tiny trials (llama3-tiny, no pruner) at `parallel` 1 and 2, against
    the same K jobs (the parameters the sweep chose, on the same base job) submitted by hand through
    CreateTrainingJob by a client that keeps `parallel` unfinished (it polls GetTrainingJob every
    0.1 s and submits the next job as one ends). Each side is timed from its first create call to
    its last trial's terminal state, twice, in the order sweep, hand, hand, sweep.
    ratio = sweep trials/hour ÷ hand trials/hour (1.0 = no overhead). On a busy machine the
    trials' own durations vary by more than the overhead, so it also prints how long a slot stood
    idle between one job's end and the next job's start (from the jobs' recorded state changes):
    the part of the overhead that the sweep's controller (or the hand-driving client) adds.
(b) prune → free: a sweep with successive halving over a wide learning-rate range. The pruning
    decision is the trial's last REPORTED event of the sweep (the controller asks the pruner right
    after recording that event, with no await in between, and cancels the job at once); the
    devices are free at the trial job's PRUNED state change, which the job manager records once the
    worker process has exited, just before it releases the devices. Both times are the service's
    clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import LoopThread  # noqa: E402
from tests.training.conftest import import_dataset  # noqa: E402
from tests.training.helpers import TERMINAL, get, history, submit, tiny_job  # noqa: E402
from tunix_rt.common.host import describe_cpu  # noqa: E402
from tunix_rt.registry.server import start_registry  # noqa: E402
from tunix_rt.training.server import start_training  # noqa: E402
from tunix_rt.v1 import (  # noqa: E402
    registry_service_pb2_grpc,
    run_pb2,
    sweep_pb2,
    training_job_pb2,
    training_service_pb2_grpc,
)
from tunix_rt.v1 import training_service_pb2 as tpb  # noqa: E402

P = sweep_pb2.SweepParameter
JOB_TERMINAL = TERMINAL | {run_pb2.RUN_STATE_PRUNED}
EVAL_EVERY = 4
POLL_S = 0.1


def base_job(dataset: str, steps: int) -> training_job_pb2.TrainingJob:
    return tiny_job(
        dataset,
        max_steps=steps,
        eval_interval_steps=EVAL_EVERY,
        checkpoint_interval_steps=0,
        eval_max_new_tokens=1,
    )


def run_sweep(stub: Any, sweep: sweep_pb2.Sweep, sweep_id: str) -> tuple[Any, float]:
    """Creates the sweep and waits for its end; the sweep and the seconds it took."""
    start = time.perf_counter()
    request = tpb.CreateSweepRequest(sweep=sweep, sweep_id=sweep_id)
    name = stub.CreateSweep(request).sweep.name
    while (done := stub.GetSweep(tpb.GetSweepRequest(name=name)).sweep).state not in TERMINAL:
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - start
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
    return done, elapsed


def run_by_hand(
    stub: Any, jobs: list[training_job_pb2.TrainingJob], parallel: int
) -> tuple[list[str], float]:
    """Submits `jobs` keeping at most `parallel` unfinished; their names and the seconds until
    all ended."""
    start = time.perf_counter()
    waiting, running, names = list(jobs), list[str](), list[str]()
    while waiting or running:
        running = [n for n in running if get(stub, n).state not in JOB_TERMINAL]
        while waiting and len(running) < parallel:
            running.append(submit(stub, waiting.pop(0)).name)
            names.append(running[-1])
        time.sleep(POLL_S)
    return names, time.perf_counter() - start


def idle_gaps(registry: Any, jobs: list[str], parallel: int) -> list[float]:
    """Seconds a slot stood idle before each job after the first `parallel`: from the latest end
    of another job to its start (RUNNING), both as the service recorded them."""
    spans = []
    for job in jobs:
        changes = {
            e.state_change.to_state: e.time.ToNanoseconds() / 1e9
            for e in history(registry, f"runs/{job.removeprefix('trainingJobs/')}")
            if e.WhichOneof("payload") == "state_change"
        }
        end = next(t for state, t in changes.items() if state in JOB_TERMINAL)
        spans.append((changes[run_pb2.RUN_STATE_RUNNING], end))
    spans.sort()
    return [
        start - max((end for _, end in spans[:n] if end <= start), default=start)
        for n, (start, _) in enumerate(spans)
        if n >= parallel
    ]


def trial_jobs(base: training_job_pb2.TrainingJob, sweep: Any) -> list[Any]:
    """The sweep's trials as plain jobs: the base job with each trial's parameters set."""
    jobs = []
    for trial in sweep.trials:
        job = training_job_pb2.TrainingJob()
        job.CopyFrom(base)
        for key, value in json_format.MessageToDict(trial.params).items():
            setattr(job.hyperparameters, key, value)
        jobs.append(job)
    return jobs


def overhead(
    stub: Any, registry: Any, dataset: str, trials: int, steps: int, parallel: int
) -> dict[str, Any]:
    """Seconds of the sweep and of the same jobs by hand, each run twice in the order sweep,
    hand, hand, sweep (so a drift in the machine's load falls on both sides alike), and the idle
    gaps between their jobs."""
    base = base_job(dataset, steps)
    sweep = sweep_pb2.Sweep(
        base_training_job=base,
        search_space=[P(name="learning_rate", float_range=P.FloatRange(min=1e-4, max=3e-3))],
        objective=sweep_pb2.SweepObjective(
            metric="eval_loss", direction=sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE
        ),
        max_trials=trials,
        parallel_trials=parallel,
        algorithm=sweep_pb2.SWEEP_ALGORITHM_RANDOM,
        pruner=sweep_pb2.SWEEP_PRUNER_NONE,
        seed=parallel,
    )
    first, swept = run_sweep(stub, sweep, f"overhead-p{parallel}-a")
    jobs = trial_jobs(base, first)
    hand_a, by_hand_a = run_by_hand(stub, jobs, parallel)
    hand_b, by_hand_b = run_by_hand(stub, jobs, parallel)
    # The same seed proposes the same parameters again.
    second, again = run_sweep(stub, sweep, f"overhead-p{parallel}-b")
    assert [t.params for t in second.trials] == [t.params for t in first.trials]
    sweep_gaps = [
        gap
        for done in (first, second)
        for gap in idle_gaps(registry, [t.training_job for t in done.trials], parallel)
    ]
    hand_gaps = idle_gaps(registry, hand_a, parallel) + idle_gaps(registry, hand_b, parallel)
    return {
        "sweep": swept + again,
        "hand": by_hand_a + by_hand_b,
        "sweep_gaps": sweep_gaps,
        "hand_gaps": hand_gaps,
    }


def prune_latencies(stub: Any, registry: Any, dataset: str, trials: int) -> list[float]:
    """Seconds from each pruning decision to the pruned trial's devices being free."""
    sweep = sweep_pb2.Sweep(
        base_training_job=base_job(dataset, 4 * EVAL_EVERY),
        search_space=[P(name="learning_rate", float_range=P.FloatRange(min=1e-5, max=3e-2, log=True))],  # noqa: E501
        objective=sweep_pb2.SweepObjective(
            metric="eval_loss", direction=sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE
        ),
        max_trials=trials,
        parallel_trials=2,
        algorithm=sweep_pb2.SWEEP_ALGORITHM_RANDOM,
        pruner=sweep_pb2.SWEEP_PRUNER_SUCCESSIVE_HALVING,
        seed=3,
    )  # fmt: skip
    done, _ = run_sweep(stub, sweep, "pruning")
    events = [r.sweep_event for r in stub.StreamSweep(tpb.StreamSweepRequest(name=done.name))]
    latencies = []
    for trial in done.trials:
        if trial.state != run_pb2.RUN_STATE_PRUNED:
            continue
        decided = max(
            e.time.ToNanoseconds()
            for e in events
            if e.trial_change.kind == sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_REPORTED
            and e.trial_change.trial.number == trial.number
        )
        job_run = f"runs/{trial.training_job.removeprefix('trainingJobs/')}"
        freed = next(
            e.time.ToNanoseconds()
            for e in history(registry, job_run)
            if e.WhichOneof("payload") == "state_change"
            and e.state_change.to_state == run_pb2.RUN_STATE_PRUNED
        )
        latencies.append((freed - decided) / 1e9)
    return latencies


def timed(what: str, action: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = action()
    print(f"  [{what}: {time.perf_counter() - start:.0f} s]", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3, help="K trials per sweep")
    parser.add_argument("--steps", type=int, default=24, help="steps per overhead trial")
    parser.add_argument("--prune-trials", type=int, default=6)
    args = parser.parse_args()
    loop = LoopThread()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        registry = loop.run(start_registry(data_dir=tmp / "registry"))
        training = loop.run(
            start_training(
                registry_address=registry.address,
                data_dir=tmp / "training",
                cpu_slots=2,
                probe_gpus=False,
            )
        )
        new_reg: Any = registry_service_pb2_grpc.RegistryServiceStub
        new_train: Any = training_service_pb2_grpc.TrainingServiceStub
        reg_stub = new_reg(grpc.insecure_channel(registry.address))
        stub = new_train(grpc.insecure_channel(training.address))
        dataset = import_dataset(reg_stub, "bench")
        results = {
            p: timed(f"parallel {p}", lambda p=p: overhead(stub, reg_stub, dataset, args.trials, args.steps, p))  # type: ignore[misc]  # noqa: E501
            for p in (1, 2)
        }  # fmt: skip
        latencies = timed(
            "pruning", lambda: prune_latencies(stub, reg_stub, dataset, args.prune_trials)
        )
        loop.run(training.stop(0))
        loop.run(registry.stop(0))
    loop.close()
    print(f"CPU: {describe_cpu()}")
    print(
        f"(a) {args.trials} trials x 2 rounds per side of llama3-tiny, {args.steps} steps of "
        "4x128, eval every 4"
    )
    for parallel, r in results.items():
        count = 2 * args.trials
        sweep_rate, hand_rate = 3600 * count / r["sweep"], 3600 * count / r["hand"]
        print(
            f"  parallel {parallel}: sweep {r['sweep']:.1f} s = {sweep_rate:.0f} trials/h, "
            f"by hand {r['hand']:.1f} s = {hand_rate:.0f} trials/h, "
            f"ratio sweep/hand {sweep_rate / hand_rate:.3f}"
        )
        print(
            f"    slot idle between jobs: sweep median {statistics.median(r['sweep_gaps']):.3f} s"
            f" (max {max(r['sweep_gaps']):.3f}), by hand median "
            f"{statistics.median(r['hand_gaps']):.3f} s (max {max(r['hand_gaps']):.3f})"
        )
    if latencies:
        print(
            f"(b) prune decision -> devices free over {len(latencies)} pruned trials "
            f"(of {args.prune_trials}): median {statistics.median(latencies):.2f} s, "
            f"max {max(latencies):.2f} s"
        )
    else:
        print(f"(b) no trial of {args.prune_trials} was pruned")


if __name__ == "__main__":
    main()
