"""A sweep end to end through a real registry and training service: six trials of the tiny model,
two at a time, over a wide learning-rate range with successive halving, the training service
restarted mid-sweep; the best trial registered under an alias."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.training.conftest import Stack
from tests.training.helpers import free_devices, history, tiny_job, wait_until
from tunix_rt.client.cli import main
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2, sweep_pb2
from tunix_rt.v1 import training_service_pb2 as tpb

P = sweep_pb2.SweepParameter
RUNNING, SUCCEEDED, PRUNED = (
    run_pb2.RUN_STATE_RUNNING,
    run_pb2.RUN_STATE_SUCCEEDED,
    run_pb2.RUN_STATE_PRUNED,
)
MAX_STEPS, EVAL_EVERY, TRIALS = 16, 4, 6


def get_sweep(stack: Stack, name: str) -> Any:
    return stack.training_stub.GetSweep(tpb.GetSweepRequest(name=name)).sweep


def running_intervals(stack: Stack, job_id: str) -> list[tuple[datetime, datetime]]:
    """When the trial's job held devices: from each RUNNING state change to the next change."""
    intervals, start = [], None
    for event in history(stack.registry_stub, f"runs/{job_id}"):
        if event.WhichOneof("payload") != "state_change":
            continue
        when = event.time.ToDatetime()
        if event.state_change.to_state == RUNNING:
            start = when
        elif start is not None:
            intervals.append((start, when))
            start = None
    assert start is None, f"{job_id} never left RUNNING"
    return intervals


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = current = 0
    for _, delta in edges:  # an end sorts before a start at the same instant
        current += delta
        most = max(most, current)
    return most


def follow(stack: Stack, name: str, seen: list[Any]) -> None:
    """Reads the sweep's stream until it ends (the restart ends it early; that is fine)."""
    try:
        for response in stack.training_stub.StreamSweep(
            tpb.StreamSweepRequest(name=name), timeout=400
        ):
            seen.append(response.sweep_event)
    except Exception:  # the restarted service closes the stream
        pass


def cli(stack: Stack, *args: str) -> Any:
    argv = ["--registry", stack.registry.address, "--training", stack.training.address]
    return CliRunner().invoke(main, [*argv, "--timeout", "60", *args])


def test_a_sweep_prunes_survives_a_restart_and_registers_its_best(
    stack: Stack, tmp_path: Path
) -> None:
    base = tiny_job(
        stack.dataset,
        max_steps=MAX_STEPS,
        eval_interval_steps=EVAL_EVERY,
        checkpoint_interval_steps=EVAL_EVERY,
        eval_max_new_tokens=1,
    )
    sweep = sweep_pb2.Sweep(
        base_training_job=base,
        search_space=[P(name="lr", float_range=P.FloatRange(min=1e-5, max=3e-2, log=True))],
        objective=sweep_pb2.SweepObjective(
            metric="eval_loss", direction=sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE
        ),
        max_trials=TRIALS,
        parallel_trials=2,
        algorithm=sweep_pb2.SWEEP_ALGORITHM_RANDOM,
        pruner=sweep_pb2.SWEEP_PRUNER_SUCCESSIVE_HALVING,
        seed=3,
        register_best_as="models/swept",
        best_alias="candidate",
    )
    created = stack.training_stub.CreateSweep(
        tpb.CreateSweepRequest(sweep=sweep, sweep_id="lr-sweep")
    ).sweep
    assert created.state == RUNNING
    seen: list[Any] = []
    reader = threading.Thread(target=follow, args=(stack, created.name, seen))
    reader.start()

    # Restart the training service once two trials have ended and others are still running.
    wait_until(
        lambda: sum(t.end_time.seconds > 0 for t in get_sweep(stack, created.name).trials) >= 2,
        timeout=240,
        what="two trials to end",
    )
    before = get_sweep(stack, created.name)
    assert before.state == RUNNING
    assert sum(t.end_time.seconds > 0 for t in before.trials) < TRIALS
    stack.restart_training(cpu_slots=2)
    reader.join(30)

    deadline = time.monotonic() + 300
    while (done := get_sweep(stack, created.name)).state == RUNNING:
        assert time.monotonic() < deadline, "the sweep did not end"
        time.sleep(0.5)
    assert done.state == SUCCEEDED, done.error.message

    # No trial lost or repeated across the restart: numbers 0..5, one job each.
    assert [t.number for t in done.trials] == list(range(TRIALS))
    assert len({t.training_job for t in done.trials}) == TRIALS
    for old in before.trials:
        assert done.trials[old.number].params == old.params

    # Never more than two trials held devices at once.
    intervals = {
        t.number: running_intervals(stack, t.training_job.removeprefix("trainingJobs/"))
        for t in done.trials
    }
    assert most_at_once([i for spans in intervals.values() for i in spans]) <= 2

    # At least one trial was pruned early, and a later trial got its device.
    pruned = [t for t in done.trials if t.state == PRUNED]
    assert pruned, [(t.number, t.state, t.objective_value) for t in done.trials]
    first = min(pruned, key=lambda t: t.end_time.ToDatetime())
    assert first.last_step < MAX_STEPS and "pruned by successive halving" in first.reason
    job = stack.training_stub.GetTrainingJob(tpb.GetTrainingJobRequest(name=first.training_job))
    assert job.training_job.state == PRUNED and job.training_job.step < MAX_STEPS
    assert "pruned" in job.training_job.error.message
    # Its device went to the next trial at once (unless it was among the last trials).
    pruned_end = intervals[first.number][-1][1]
    after = [t for t in done.trials if t.create_time.ToDatetime() >= pruned_end]
    if after:
        next_start = intervals[min(t.number for t in after)][0][0]
        assert (next_start - pruned_end).total_seconds() < 30
    assert free_devices(stack.training_stub) == 2

    # The best trial: the smallest final eval loss of the succeeded ones, aliased `candidate`.
    succeeded = [t for t in done.trials if t.state == SUCCEEDED]
    best = min(succeeded, key=lambda t: t.objective_value)
    assert done.best_trial.number == best.number
    assert done.best_trial.objective_value == best.objective_value
    assert "learning_rate" in done.best_trial.params
    assert done.best_model_version == best.model_version != ""
    resolved = stack.registry_stub.ResolveModelVersion(
        rpb.ResolveModelVersionRequest(reference="models/swept@candidate")
    ).model_version
    assert resolved.name == done.best_model_version

    # The stream replays the whole sweep: every trial created once, its final state change last.
    replay = [
        r.sweep_event
        for r in stack.training_stub.StreamSweep(tpb.StreamSweepRequest(name=created.name))
    ]
    assert [e.sequence for e in replay] == list(range(1, len(replay) + 1))
    assert [e.sequence for e in seen] == [e.sequence for e in replay[: len(seen)]]
    resumed = stack.training_stub.StreamSweep(
        tpb.StreamSweepRequest(name=created.name, from_sequence=5)
    )
    assert [r.sweep_event for r in resumed] == replay[4:]
    kinds = [e.trial_change.kind for e in replay if e.WhichOneof("payload") == "trial_change"]
    assert kinds.count(sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_CREATED) == TRIALS
    assert kinds.count(sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_ENDED) == TRIALS
    assert replay[-1].state_change.to_state == SUCCEEDED

    # The CLI shows, lists, follows (a finished sweep: its replay and table) and draws it.
    shown = cli(stack, "sweep", "show", "lr-sweep")
    assert shown.exit_code == 0, shown.output
    assert (
        f"trial {best.number}:" in shown.output and "pruned by successive halving" in shown.output
    )
    listed = cli(stack, "sweep", "list", "--state", "succeeded")
    assert listed.exit_code == 0 and "lr-sweep" in listed.output
    followed = cli(stack, "sweep", "follow", "lr-sweep")
    assert followed.exit_code == 0, followed.output
    assert f"best: {done.best_model_version}" in followed.output
    # Not a terminal: a plain line per event (state, params, objective, best so far), no ANSI.
    assert "\x1b[" not in followed.output
    lines = followed.output.splitlines()
    assert sum(" queued [learning_rate=" in x and " created " in x for x in lines) == TRIALS
    assert any(x.startswith(f"trial {first.number} pruned [") for x in lines)
    assert any(" running [" in x and ": eval_loss " in x for x in lines)
    last_trial_line = [x for x in lines if x.startswith("trial ")][-1]
    best_so_far = f"(best so far: trial {best.number}, {best.objective_value:.4g})"
    assert last_trial_line.endswith(best_so_far)
    # --live redraws the table in place; its last frame names the best trial.
    live = cli(stack, "sweep", "follow", "lr-sweep", "--live")
    assert live.exit_code == 0, live.output
    assert "\x1b[J" in live.output
    last_frame = live.output.rsplit("\x1b[J", 1)[1]
    assert f"best so far: trial {best.number}" in last_frame and "pruned" in last_frame
    picture = tmp_path / "sweep.png"
    drawn = cli(stack, "sweep", "plot", "lr-sweep", "-o", str(picture))
    assert drawn.exit_code == 0, drawn.output
    assert picture.read_bytes().startswith(b"\x89PNG")
