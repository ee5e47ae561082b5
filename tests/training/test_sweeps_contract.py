"""Sweeps through a real training service: each bad CreateSweep gets its status and names its
field; a sweep is not a training job and a job is not a sweep; a validated sweep is shown with
its defaults and creates nothing."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import struct_pb2

from tests.training.conftest import Stack
from tests.training.helpers import free_devices, tiny_job, violations, wait_until
from tunix_rt.client.cli import main
from tunix_rt.v1 import run_pb2, sweep_pb2, training_job_pb2
from tunix_rt.v1 import training_service_pb2 as tpb

P = sweep_pb2.SweepParameter
MINIMIZE = sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE


def values(*items: Any) -> P.Categorical:
    listed = struct_pb2.ListValue()
    listed.extend(list(items))
    return P.Categorical(values=listed.values)


def lr(low: float = 1e-4, high: float = 1e-2, log: bool = True) -> P:
    return P(name="lr", float_range=P.FloatRange(min=low, max=high, log=log))


def sweep(dataset: str, *params: P, **fields: Any) -> sweep_pb2.Sweep:
    base = fields.pop("base", None) or tiny_job(dataset)
    message = sweep_pb2.Sweep(
        base_training_job=base,
        search_space=list(params),
        objective=sweep_pb2.SweepObjective(metric="eval_loss", direction=MINIMIZE),
        max_trials=4,
        parallel_trials=1,
    )
    for name, value in fields.items():
        if name == "metric":
            message.objective.metric = value
        else:
            setattr(message, name, value)
    return message


def create(stack: Stack, message: sweep_pb2.Sweep, validate_only: bool = True) -> Any:
    return stack.training_stub.CreateSweep(
        tpb.CreateSweepRequest(sweep=message, validate_only=validate_only)
    ).sweep


def refused(stack: Stack, message: sweep_pb2.Sweep) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        create(stack, message)
    return caught.value


def real(name: str, low: float, high: float) -> P:
    return P(name=name, float_range=P.FloatRange(min=low, max=high))


def choice(name: str, *items: Any) -> P:
    return P(name=name, categorical=values(*items))


S = "sweep.search_space"
BAD = [
    ((), {}, S),
    ((real("dropout_rate", 0, 1),), {}, f"{S}[0].name"),
    ((lr(), real("learning_rate", 1e-3, 1e-2)), {}, f"{S}[1].name"),
    ((lr(1e-2, 1e-4),), {}, f"{S}[0].float_range.max"),
    ((lr(0.0, 1e-2),), {}, f"{S}[0].float_range.min"),
    ((choice("batch_size"),), {}, f"{S}[0].categorical.values"),
    ((choice("batch_size", 4, 2.5),), {}, f"{S}[0].categorical.values[1]"),
    ((real("batch_size", 2, 8),), {}, f"{S}[0].float_range"),
    ((P(name="lora_rank", int_range=P.IntRange(min=4, max=64)),), {}, f"{S}[0].name"),
    ((P(name="learning_rate"),), {}, f"{S}[0]"),
    ((lr(),), {"metric": "accuracy"}, "sweep.objective.metric"),
    ((lr(),), {"algorithm": sweep_pb2.SWEEP_ALGORITHM_GRID}, f"{S}[0]"),
    ((lr(),), {"max_trials": 5000}, "sweep.max_trials"),
    ((lr(),), {"best_alias": "candidate"}, "sweep.best_alias"),
    # A trial at the end of a range fails the job validation, named in the base job.
    ((lr(1e-3, 5.0),), {}, "sweep.base_training_job.hyperparameters.learning_rate"),
    (
        (choice("arch.no_such_key", 1, 2),),
        {},
        "sweep.base_training_job.architecture_overrides.no_such_key",
    ),
]


@pytest.mark.parametrize(("params", "fields", "field"), BAD)
def test_bad_sweeps_are_invalid_argument_naming_the_field(
    stack: Stack, params: tuple[P, ...], fields: dict[str, Any], field: str
) -> None:
    err = refused(stack, sweep(stack.dataset, *params, **fields))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert field in violations(err), (violations(err), err.details())


def test_more_parallel_trials_than_the_host_has_is_failed_precondition(stack: Stack) -> None:
    err = refused(stack, sweep(stack.dataset, lr(), parallel_trials=3))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "this host has 2" in (err.details() or "")


def test_evaluating_the_best_without_an_inference_service_is_failed_precondition(
    stack: Stack,
) -> None:
    err = refused(stack, sweep(stack.dataset, lr(), evaluate_best=True))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "inference service" in (err.details() or "")


def test_an_unknown_dataset_is_not_found(stack: Stack) -> None:
    err = refused(stack, sweep("datasets/missing", lr()))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_a_validated_sweep_shows_its_defaults_and_creates_nothing(stack: Stack) -> None:
    shown = create(
        stack,
        sweep(
            stack.dataset,
            lr(),
            P(name="batch_size", categorical=values(2, 4)),
            register_best_as="models/best-of",
            max_trials=0,
        ),
    )
    assert shown.max_trials == 10 and shown.parallel_trials == 1
    assert shown.best_alias == "best"
    assert [p.name for p in shown.search_space] == ["learning_rate", "batch_size"]
    assert list(shown.search_space[1].categorical.values) == list(values(2, 4).values)
    listed = stack.training_stub.ListSweeps(tpb.ListSweepsRequest()).sweeps
    assert shown.name not in [s.name for s in listed]


def test_a_sweep_is_not_a_job_and_a_job_is_not_a_sweep(stack: Stack) -> None:
    job = tiny_job(stack.dataset, max_steps=5000)
    created = stack.training_stub.CreateTrainingJob(
        tpb.CreateTrainingJobRequest(training_job=job, training_job_id="plain-job")
    ).training_job
    with pytest.raises(grpc.RpcError) as caught:
        stack.training_stub.GetSweep(tpb.GetSweepRequest(name="sweeps/plain-job"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad_name:
        stack.training_stub.GetSweep(tpb.GetSweepRequest(name="trainingJobs/plain-job"))
    assert bad_name.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stack.training_stub.CancelTrainingJob(tpb.CancelTrainingJobRequest(name=created.name))


def test_a_full_fine_tuning_base_refuses_lora_parameters_but_lora_takes_them(
    stack: Stack,
) -> None:
    base = tiny_job(stack.dataset)
    base.lora.CopyFrom(training_job_pb2.LoraConfig(rank=4))
    rank = P(name="lora_rank", int_range=P.IntRange(min=2, max=8, log=True))
    shown = create(stack, sweep(stack.dataset, rank, base=base))
    assert shown.search_space[0].int_range.log


def test_cancelling_a_sweep_cancels_its_trials_and_starts_no_more(stack: Stack) -> None:
    long = tiny_job(stack.dataset, max_steps=5000, eval_interval_steps=0)
    message = sweep(stack.dataset, lr(), base=long, parallel_trials=2)
    created = stack.training_stub.CreateSweep(
        tpb.CreateSweepRequest(sweep=message, sweep_id="to-cancel")
    ).sweep

    def trials() -> Any:
        return stack.training_stub.GetSweep(tpb.GetSweepRequest(name=created.name)).sweep.trials

    wait_until(
        lambda: [t.state for t in trials()] == [run_pb2.RUN_STATE_RUNNING] * 2,
        what="two trials running",
    )
    cancelling = stack.training_stub.CancelSweep(
        tpb.CancelSweepRequest(name=created.name, reason="enough")
    ).sweep
    assert cancelling.state in (run_pb2.RUN_STATE_RUNNING, run_pb2.RUN_STATE_CANCELLED)
    wait_until(
        lambda: (
            stack.training_stub.GetSweep(tpb.GetSweepRequest(name=created.name)).sweep.state
            == run_pb2.RUN_STATE_CANCELLED
        ),
        what="the sweep to end",
    )
    done = stack.training_stub.GetSweep(tpb.GetSweepRequest(name=created.name)).sweep
    assert [t.state for t in done.trials] == [run_pb2.RUN_STATE_CANCELLED] * 2
    assert done.error.message == "enough" and not done.HasField("best_trial")
    assert free_devices(stack.training_stub) == 2
    again = stack.training_stub.CancelSweep(tpb.CancelSweepRequest(name=created.name)).sweep
    assert again.state == run_pb2.RUN_STATE_CANCELLED
    # Listed as a sweep by its state; its trials, not it, are training jobs.
    cancelled = stack.training_stub.ListSweeps(
        tpb.ListSweepsRequest(states=[run_pb2.RUN_STATE_CANCELLED], page_size=1)
    )
    assert [s.name for s in cancelled.sweeps] == [created.name]
    succeeded = stack.training_stub.ListSweeps(
        tpb.ListSweepsRequest(states=[run_pb2.RUN_STATE_SUCCEEDED])
    )
    assert not succeeded.sweeps
    jobs = stack.training_stub.ListTrainingJobs(tpb.ListTrainingJobsRequest()).training_jobs
    names = {j.name for j in jobs}
    assert {t.training_job for t in done.trials} <= names
    assert "trainingJobs/to-cancel" not in names
    trial = stack.training_stub.GetTrainingJob(
        tpb.GetTrainingJobRequest(name=done.trials[0].training_job)
    ).training_job
    assert trial.labels["sweep"] == "to-cancel" and trial.labels["sweep_trial"] == "0"


def test_the_cli_validates_a_sweep_with_the_train_commands_base_options(stack: Stack) -> None:
    argv = ["--registry", stack.registry.address, "--training", stack.training.address]
    args = ["sweep", "create", "--dataset", stack.dataset, "--model", "llama3-tiny"]
    options = [
        *("--steps", "20", "--devices", "cpu:1", "--eval-interval", "5"),
        *("--param", "lr=log:1e-4:3e-2", "--param", "batch_size=choice:2,4"),
        *("--objective", "eval_loss:min", "--trials", "4", "--parallel", "2"),
        *("--pruner", "hyperband", "--register-best-as", "cli-best", "--alias", "candidate"),
        "--validate-only",
    ]
    result = CliRunner().invoke(main, [*argv, *args, *options])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["pruner"] == "SWEEP_PRUNER_HYPERBAND" and shown["parallel_trials"] == 2
    assert shown["register_best_as"] == "models/cli-best" and shown["best_alias"] == "candidate"
    assert shown["base_training_job"]["hyperparameters"]["max_steps"] == "20"
    refused = CliRunner().invoke(main, [*argv, *args, *options[:-1], "--parallel", "3"])
    assert refused.exit_code == 1 and "this host has 2" in refused.output
