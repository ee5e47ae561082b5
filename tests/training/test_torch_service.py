"""Torch-backend jobs through a real training service: real workers train llama3-tiny on CPU."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from google.protobuf import json_format

from tests.training.conftest import Stack
from tests.training.helpers import (
    TERMINAL,
    get,
    history,
    losses,
    submit,
    tiny_job,
    wait_for,
    wait_until,
)
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.training import backend_choice, job_spec
from tunix_rt.v1 import backend_pb2, run_pb2, training_job_pb2
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import training_service_pb2 as tpb

SUCCEEDED, FAILED, CANCELLED = (
    run_pb2.RUN_STATE_SUCCEEDED,
    run_pb2.RUN_STATE_FAILED,
    run_pb2.RUN_STATE_CANCELLED,
)
TORCH, JAX = backend_pb2.BACKEND_TORCH, backend_pb2.BACKEND_JAX


def job_on(backend: int, dataset: str, **hyper: Any) -> training_job_pb2.TrainingJob:
    job = tiny_job(dataset, **hyper)
    job.backend = backend  # type: ignore[assignment]
    return job


def stream_shape(events: list[run_pb2.RunEvent]) -> list[tuple[str, int, tuple[str, ...]]]:
    """What a follower sees, values aside: (payload, step, metric names) per step event."""
    shape = []
    for event in events:
        kind = event.WhichOneof("payload")
        if kind == "metrics":
            shape.append((kind, event.step, tuple(sorted(event.metrics.values))))
        elif kind == "checkpoint":
            shape.append((kind, event.step, ()))
    return shape


@pytest.mark.slow
def test_one_dataset_trained_on_each_backend_registers_both_with_one_metric_stream(
    stack: Stack,
) -> None:
    stub = stack.training_stub
    torch_job = submit(stub, job_on(TORCH, stack.dataset, eval_interval_steps=6), "torch-happy")
    jax_job = submit(stub, job_on(JAX, stack.dataset, eval_interval_steps=6), "jax-happy")
    assert torch_job.resolved_backend == TORCH and jax_job.resolved_backend == JAX
    done = {name: wait_for(stub, name, TERMINAL) for name in (torch_job.name, jax_job.name)}
    for job in done.values():
        assert job.state == SUCCEEDED, job.error.message
    torch_events = history(stack.registry_stub, "runs/torch-happy")
    jax_events = history(stack.registry_stub, "runs/jax-happy")
    # The same events at the same steps with the same metric names, on either backend.
    assert stream_shape(torch_events) == stream_shape(jax_events)
    names = {n for _, _, metric in stream_shape(torch_events) for n in metric}
    assert names >= {"loss", "learning_rate", "grad_norm", "tokens_per_second", "eval_loss"}
    curve = losses(torch_events)
    assert sorted(curve) == list(range(1, 13))
    assert sum(curve[s] for s in (10, 11, 12)) < sum(curve[s] for s in (1, 2, 3))
    # Both registered, each with its backend's provenance.
    for job, backend in ((done[torch_job.name], "torch"), (done[jax_job.name], "jax")):
        version = stack.registry_stub.GetModelVersion(
            rpb.GetModelVersionRequest(name=job.registered_model_version)
        ).model_version
        provenance = json_format.MessageToDict(version.provenance)
        assert provenance["backend"] == backend
        assert provenance["config"]["backend"] == backend
        assert provenance["seed"] == 7
    provenance = json_format.MessageToDict(
        stack.registry_stub.GetModelVersion(
            rpb.GetModelVersionRequest(name=done[torch_job.name].registered_model_version)
        ).model_version.provenance
    )
    assert {"torch", "transformers", "peft"} <= set(provenance["library_versions"])
    assert provenance["platform"] == "cpu" and provenance["torch_threads"] >= 1
    assert provenance["parameter_count"] > 0


def test_an_unset_backend_is_chosen_by_device_kind_and_recorded(stack: Stack) -> None:
    request = tpb.CreateTrainingJobRequest(
        training_job=tiny_job(stack.dataset), training_job_id="auto", validate_only=True
    )
    job = stack.training_stub.CreateTrainingJob(request).training_job
    expected = backend_choice.choose("cpu")
    assert job.resolved_backend == {"jax": JAX, "torch": TORCH}[expected]
    devices = stack.training_stub.ListDevices(tpb.ListDevicesRequest()).devices
    assert all(set(d.backends) == {JAX, TORCH} for d in devices)
    presets = stack.training_stub.ListArchitecturePresets(
        tpb.ListArchitecturePresetsRequest()
    ).presets
    assert all(TORCH in p.backends for p in presets)


def test_lora_dropout_is_accepted_on_torch_only(stack: Stack) -> None:
    job = job_on(TORCH, stack.dataset)
    job.lora.rank, job.lora.dropout = 4, 0.1
    request = tpb.CreateTrainingJobRequest(training_job=job, validate_only=True)
    assert stack.training_stub.CreateTrainingJob(request).training_job.lora.dropout == (
        pytest.approx(0.1)
    )


@pytest.mark.slow
def test_a_torch_job_killed_mid_run_and_resumed_matches_an_uninterrupted_run(
    stack: Stack,
) -> None:
    stub = stack.training_stub
    straight = submit(stub, job_on(TORCH, stack.dataset, max_steps=24), "t-straight")
    interrupted = submit(stub, job_on(TORCH, stack.dataset, max_steps=24), "t-interrupted")
    wait_until(lambda: get(stub, interrupted.name).step >= 6, what="step 6")
    process = stack.training.manager.jobs["t-interrupted"].process
    assert process is not None
    # No chance to save anything: the resume starts from the newest checkpoint (every 4 steps).
    os.kill(process.pid, signal.SIGKILL)
    assert wait_for(stub, interrupted.name, TERMINAL).state == FAILED
    stub.ResumeTrainingJob(tpb.ResumeTrainingJobRequest(name=interrupted.name))
    cancelled = submit(stub, job_on(TORCH, stack.dataset, max_steps=24), "t-cancelled")
    wait_until(lambda: get(stub, cancelled.name).step >= 6, what="step 6")
    stub.CancelTrainingJob(tpb.CancelTrainingJobRequest(name=cancelled.name))
    assert wait_for(stub, cancelled.name, TERMINAL).state == CANCELLED
    stub.ResumeTrainingJob(tpb.ResumeTrainingJobRequest(name=cancelled.name))
    resumed = wait_for(stub, interrupted.name, TERMINAL)
    assert resumed.state == SUCCEEDED, resumed.error.message
    assert resumed.attempt == 2
    assert wait_for(stub, cancelled.name, TERMINAL).state == SUCCEEDED
    assert wait_for(stub, straight.name, TERMINAL).state == SUCCEEDED
    # The last value recorded for each step: the resumed attempt's where it re-ran a step.
    expected = losses(history(stack.registry_stub, "runs/t-straight"))
    for run in ("runs/t-interrupted", "runs/t-cancelled"):
        got = losses(history(stack.registry_stub, run))
        assert sorted(got) == sorted(expected) == list(range(1, 25))
        assert got == expected, run  # bit-identical on CPU float32


def test_the_torch_backend_is_refused_on_tpus_naming_the_field() -> None:
    job = job_on(TORCH, "datasets/mini")
    with pytest.raises(InvalidArgument) as info:
        job_spec.spec_from_job(job, "tpu-job", "tpu", 1)
    assert [v.field for v in info.value.violations] == ["training_job.backend"]
    assert job_spec.spec_from_job(job, "gpu-job", "gpu", 1).backend == "torch"
    job.backend = backend_pb2.BACKEND_UNSPECIFIED
    assert job_spec.spec_from_job(job, "tpu-auto", "tpu", 1).backend == "jax"
