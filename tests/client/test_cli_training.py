"""The training commands as users run them, against a real registry and training service:
`jobs cancel` waiting for the job to stop so that `jobs resume` can follow at once, resume and
its event log saying the same thing, `--devices` naming devices by id, a finished job's epoch,
and a mistyped preset."""

# The `stack` fixture is imported from tests/training, so every test's `stack` parameter
# "redefines" it as far as ruff can tell.
# ruff: noqa: F811
from __future__ import annotations

import json

from click.testing import CliRunner, Result

from tests.training.conftest import (
    Stack,
    stack,  # noqa: F401 (the fixture these tests share)
)
from tests.training.helpers import get, history, submit, tiny_job, wait_for, wait_until
from tunix_rt.client.cli import main
from tunix_rt.v1 import run_pb2

TERMINAL = {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED}


def cli(stack: Stack, *args: str) -> Result:
    argv = ["--registry", stack.registry.address, "--training", stack.training.address]
    return CliRunner().invoke(main, [*argv, "--timeout", "60", *args])


def state_reasons(stack: Stack, run: str) -> list[str]:
    return [
        e.state_change.reason for e in history(stack.registry_stub, run) if e.state_change.reason
    ]


def test_cancel_waits_for_the_job_to_stop_so_resume_follows_at_once(stack: Stack) -> None:
    job = submit(
        stack.training_stub,
        tiny_job(stack.dataset, "torch", max_steps=400),
        "cancel-me",
    )
    wait_until(lambda: get(stack.training_stub, job.name).step >= 6, what="step 6")
    cancelled = cli(stack, "jobs", "cancel", "cancel-me", "--reason", "walkthrough")
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout == "cancel-me: cancelled\n"
    resumed = cli(stack, "jobs", "resume", "cancel-me")
    assert resumed.exit_code == 0, resumed.output
    checkpoint = get(stack.training_stub, job.name).latest_checkpoint
    assert checkpoint  # every 4 steps
    assert f"resuming from the latest checkpoint, {checkpoint}" in resumed.stdout
    # The event log says the same (the registry stores events a moment after they happen).
    reason = f"resumed from the latest checkpoint, {checkpoint}"
    wait_until(lambda: reason in state_reasons(stack, "runs/cancel-me"), what=reason)
    stopped = cli(stack, "jobs", "cancel", "cancel-me", "--no-wait")
    assert stopped.exit_code == 0, stopped.output
    assert wait_for(stack.training_stub, job.name, TERMINAL).state == run_pb2.RUN_STATE_CANCELLED


def test_a_job_cancelled_before_its_first_checkpoint_resumes_from_the_start(
    stack: Stack,
) -> None:
    job = tiny_job(stack.dataset, "torch", max_steps=400, checkpoint_interval_steps=0)
    submit(stack.training_stub, job, "no-checkpoint")
    wait_until(lambda: get(stack.training_stub, "trainingJobs/no-checkpoint").step >= 2)
    assert cli(stack, "jobs", "cancel", "no-checkpoint").exit_code == 0
    resumed = cli(stack, "jobs", "resume", "no-checkpoint")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from the start: the job saved no checkpoint" in resumed.stdout
    reason = "resumed from the start: the job saved no checkpoint"
    wait_until(lambda: reason in state_reasons(stack, "runs/no-checkpoint"), what=reason)
    assert cli(stack, "jobs", "cancel", "no-checkpoint").exit_code == 0


def test_devices_named_by_id_and_the_epoch_of_a_finished_job(stack: Stack) -> None:
    listed = cli(stack, "devices")
    assert "cpu:0" in listed.stdout and "cpu:1" in listed.stdout
    args = ["train", "--dataset", stack.dataset, "--model", "llama3-tiny", "--steps", "6"]
    args += ["--batch-size", "4", "--seq-len", "128", "--job-id", "on-cpu1"]
    trained = cli(stack, *args, "--devices", "cpu:[1]")
    assert trained.exit_code == 0, trained.output
    done = wait_for(stack.training_stub, "trainingJobs/on-cpu1", TERMINAL)
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
    assert list(done.devices.ids) == ["cpu:1"]
    shown = cli(stack, "jobs", "show", "on-cpu1")
    assert "wants" not in shown.stdout
    epoch = next(line for line in shown.stdout.splitlines() if line.startswith("epoch"))
    assert float(epoch.split()[-1]) > 0
    refused = cli(stack, "train", "--dataset", stack.dataset, "--devices", "cpu:0")
    assert refused.exit_code == 2
    assert "write cpu:[0]" in refused.output


def test_a_mistyped_preset_names_the_preset_it_resembles(stack: Stack) -> None:
    typo = cli(stack, "train", "--dataset", stack.dataset, "--model", "llama3-tin")
    assert typo.exit_code == 1
    assert "not a preset (did you mean llama3-tiny?) nor a registered model" in typo.stderr


def test_precision_and_architecture_overrides_reach_the_job(stack: Stack) -> None:
    argv = ["train", "--dataset", stack.dataset, "--model", "llama3-tiny", "--backend", "torch"]
    shown = cli(
        stack,
        *argv,
        "--precision",
        "mixed_bfloat16",
        "--arch",
        "num_layers=3",
        "--arch",
        "rope_theta=10000",
        "--validate-only",
    )
    assert shown.exit_code == 0, shown.output
    job = json.loads(shown.stdout)
    assert job["hyperparameters"]["precision"] == "PRECISION_MIXED_BFLOAT16"
    assert job["resolved_precision"] == "PRECISION_MIXED_BFLOAT16"
    assert job["architecture_overrides"] == {"num_layers": 3, "rope_theta": 10000}
    # The CLI refuses what is not FIELD=NUMBER; the service names a field that does not exist.
    bad = cli(stack, *argv, "--arch", "num_layers", "--validate-only")
    assert bad.exit_code == 2 and "is not FIELD=NUMBER" in bad.stderr
    unknown = cli(stack, *argv, "--arch", "depth=3", "--validate-only")
    assert unknown.exit_code == 1
    assert "architecture_overrides.depth" in unknown.stderr
