"""Submitting jobs: validation and refusals happen at once, before any worker starts."""

from __future__ import annotations

import grpc
import pytest

from tests.training.conftest import Stack
from tests.training.helpers import submit, tiny_job, violations, wait_for
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.models import presets
from tunix_rt.training import job_spec
from tunix_rt.v1 import backend_pb2, device_pb2, run_pb2, training_job_pb2
from tunix_rt.v1 import training_service_pb2 as tpb

TERMINAL = {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED}


def test_hyperparameters_out_of_range_name_every_field(stack: Stack) -> None:
    job = tiny_job(stack.dataset, learning_rate=5.0, batch_size=3, gradient_accumulation_steps=2000)
    job.hyperparameters.max_seq_len = 8
    job.priority = 500
    with pytest.raises(grpc.RpcError) as info:
        submit(stack.training_stub, job)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = violations(info.value)
    assert "training_job.hyperparameters.learning_rate" in fields
    assert "training_job.hyperparameters.gradient_accumulation_steps" in fields
    assert "training_job.hyperparameters.max_seq_len" in fields
    assert "training_job.priority" in fields


def test_unknown_dataset_is_not_found(stack: Stack) -> None:
    with pytest.raises(grpc.RpcError) as info:
        submit(stack.training_stub, tiny_job("datasets/nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_base_model_is_not_found(stack: Stack) -> None:
    job = tiny_job(stack.dataset)
    job.base_model_version = "no-such-model@production"
    with pytest.raises(grpc.RpcError) as info:
        submit(stack.training_stub, job)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_preset_is_invalid(stack: Stack) -> None:
    job = tiny_job(stack.dataset)
    job.preset = "gpt-17"
    with pytest.raises(grpc.RpcError) as info:
        submit(stack.training_stub, job)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "training_job.preset" in violations(info.value)


def test_three_gpus_on_a_cpu_host_are_refused_at_once(stack: Stack) -> None:
    job = tiny_job(stack.dataset, devices="gpu:3")
    with pytest.raises(grpc.RpcError) as info:
        submit(stack.training_stub, job)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2 cpu" in (info.value.details() or "")


def test_more_cpu_slots_than_the_host_has_are_refused(stack: Stack) -> None:
    with pytest.raises(grpc.RpcError) as info:
        submit(stack.training_stub, tiny_job(stack.dataset, devices="cpu:3", batch_size=6))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_validate_only_fills_defaults_and_creates_nothing(stack: Stack) -> None:
    job = training_job_pb2.TrainingJob(dataset=stack.dataset, preset="llama3-tiny")
    response = stack.training_stub.CreateTrainingJob(
        tpb.CreateTrainingJobRequest(training_job=job, training_job_id="dry", validate_only=True)
    )
    shown = response.training_job
    assert shown.hyperparameters.learning_rate == pytest.approx(3e-4)
    assert shown.hyperparameters.batch_size == 8
    assert shown.device_request.kind == device_pb2.DEVICE_KIND_CPU
    with pytest.raises(grpc.RpcError) as info:
        stack.training_stub.GetTrainingJob(tpb.GetTrainingJobRequest(name="trainingJobs/dry"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_devices_are_listed(stack: Stack) -> None:
    devices = stack.training_stub.ListDevices(tpb.ListDevicesRequest()).devices
    assert [d.id for d in devices] == ["cpu:0", "cpu:1"]
    assert all(d.kind == device_pb2.DEVICE_KIND_CPU for d in devices)


def test_a_job_may_name_its_devices_by_id_and_gets_exactly_those(stack: Stack) -> None:
    job = tiny_job(stack.dataset, max_steps=2)
    job.device_request.CopyFrom(
        device_pb2.DeviceRequest(kind=device_pb2.DEVICE_KIND_CPU, device_ids=["cpu:1"])
    )
    shown = submit(stack.training_stub, job, "named-devices")
    assert list(shown.device_request.device_ids) == ["cpu:1"]
    assert shown.device_request.count == 1
    ended = wait_for(stack.training_stub, shown.name, TERMINAL)
    assert ended.state == run_pb2.RUN_STATE_SUCCEEDED
    assert list(ended.devices.ids) == ["cpu:1"]


@pytest.mark.parametrize(
    ("ids", "kind", "code", "field"),
    [
        (["cpu:7"], device_pb2.DEVICE_KIND_CPU, grpc.StatusCode.FAILED_PRECONDITION, ""),
        (["cpu:0", "gpu:0"], 0, grpc.StatusCode.INVALID_ARGUMENT, "device_ids"),
        (["cpu:0", "cpu:0"], 0, grpc.StatusCode.INVALID_ARGUMENT, "device_ids"),
        (["0"], 0, grpc.StatusCode.INVALID_ARGUMENT, "device_ids"),
        (["cpu:0"], device_pb2.DEVICE_KIND_GPU, grpc.StatusCode.INVALID_ARGUMENT, "kind"),
    ],
)
def test_bad_device_ids_are_refused_at_submission(
    stack: Stack, ids: list[str], kind: device_pb2.DeviceKind, code: grpc.StatusCode, field: str
) -> None:
    job = tiny_job(stack.dataset)
    job.device_request.CopyFrom(device_pb2.DeviceRequest(kind=kind, device_ids=ids))
    with pytest.raises(grpc.RpcError) as info:
        submit(stack.training_stub, job)
    assert info.value.code() == code
    if field:
        assert violations(info.value) == [f"training_job.device_request.{field}"]
    else:
        assert "no device cpu:7" in (info.value.details() or "")


def test_what_a_backend_cannot_run_is_refused_at_submission_naming_each_field(
    stack: Stack,
) -> None:
    """Submission is the only validation: the backends run what job_spec accepted."""
    job = tiny_job(stack.dataset, backend="jax", batch_size=8)
    job.lora.dropout = 0.1
    with pytest.raises(InvalidArgument) as info:
        job_spec.spec_from_job(job, "j", "cpu", 3)
    assert {v.field for v in info.value.violations} == {
        "training_job.lora.dropout",
        "training_job.hyperparameters.batch_size",
    }
    job = tiny_job(stack.dataset, backend="torch", batch_size=6)
    with pytest.raises(InvalidArgument) as info:
        job_spec.spec_from_job(job, "t", "cpu", 4)
    assert [v.field for v in info.value.violations] == ["training_job.hyperparameters.batch_size"]
    job = tiny_job(stack.dataset)
    job.architecture_overrides.update({"x": 1})
    with pytest.raises(grpc.RpcError) as rpc:
        submit(stack.training_stub, job)
    assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(rpc.value) == ["training_job.architecture_overrides.x"]


def test_counts_where_zero_means_the_default_refuse_negatives_saying_at_least_one() -> None:
    job = tiny_job("datasets/mini", eval_max_new_tokens=-1)
    job.device_request.count = -2
    with pytest.raises(InvalidArgument, match=r"device_request\.count: must be at least 1"):
        job_spec.device_request_of(job)
    job.device_request.count = 0
    assert job_spec.device_request_of(job).count == 1
    with pytest.raises(InvalidArgument, match=r"eval_max_new_tokens: must be at least 1"):
        job_spec.spec_from_job(job, "j", "cpu", 1)
    job.hyperparameters.eval_max_new_tokens = 0
    assert job_spec.spec_from_job(job, "j", "cpu", 1).hyper.eval_max_new_tokens == 128


def test_enums_round_trip_through_the_spec() -> None:
    job = tiny_job("datasets/mini", backend="torch")
    hyper = job.hyperparameters
    hyper.learning_rate_schedule = training_job_pb2.LEARNING_RATE_SCHEDULE_LINEAR
    hyper.precision = backend_pb2.PRECISION_BFLOAT16
    hyper.batching = training_job_pb2.BATCHING_STRATEGY_PADDED
    spec = job_spec.spec_from_job(job, "j", "cpu", 1)
    assert (spec.hyper.schedule, spec.hyper.precision, spec.hyper.batching) == (
        "linear",
        "bfloat16",
        "padded",
    )
    shown = job_spec.job_from_spec(spec)
    assert shown.backend == backend_pb2.BACKEND_TORCH
    assert shown.device_request.kind == device_pb2.DEVICE_KIND_CPU
    assert shown.hyperparameters.learning_rate_schedule == hyper.learning_rate_schedule
    assert shown.hyperparameters.precision == hyper.precision
    assert shown.hyperparameters.batching == hyper.batching
    # Unspecified means cosine and packing, and is shown resolved.
    default = job_spec.job_from_spec(
        job_spec.spec_from_job(tiny_job("datasets/mini"), "d", "cpu", 1)
    )
    assert default.hyperparameters.learning_rate_schedule == (
        training_job_pb2.LEARNING_RATE_SCHEDULE_COSINE
    )
    assert default.hyperparameters.batching == training_job_pb2.BATCHING_STRATEGY_PACKED


def test_presets_are_listed_with_the_backends_that_build_them(stack: Stack) -> None:
    listed = stack.training_stub.ListArchitecturePresets(
        tpb.ListArchitecturePresetsRequest()
    ).presets
    assert [p.name for p in listed] == presets.names()
    for preset in listed:
        assert list(preset.backends) == [backend_pb2.BACKEND_JAX, backend_pb2.BACKEND_TORCH]
    qwen = stack.training_stub.ListArchitecturePresets(
        tpb.ListArchitecturePresetsRequest(family="qwen3")
    ).presets
    assert [p.name for p in qwen] == ["qwen3-tiny"]


@pytest.mark.parametrize(
    ("backend", "precision", "resolved"),
    [
        ("torch", backend_pb2.PRECISION_UNSPECIFIED, backend_pb2.PRECISION_FLOAT32),
        ("torch", backend_pb2.PRECISION_MIXED_BFLOAT16, backend_pb2.PRECISION_MIXED_BFLOAT16),
        ("torch", backend_pb2.PRECISION_BFLOAT16, backend_pb2.PRECISION_MIXED_BFLOAT16),
        ("jax", backend_pb2.PRECISION_BFLOAT16, backend_pb2.PRECISION_BFLOAT16),
        ("jax", backend_pb2.PRECISION_FLOAT32, backend_pb2.PRECISION_FLOAT32),
    ],
)
def test_the_resolved_precision_is_what_the_backend_runs_on_cpu(
    stack: Stack,
    backend: str,
    precision: backend_pb2.Precision,
    resolved: backend_pb2.Precision,
) -> None:
    job = tiny_job(stack.dataset, backend=backend, precision=precision)
    request = tpb.CreateTrainingJobRequest(training_job=job, validate_only=True)
    shown = stack.training_stub.CreateTrainingJob(request).training_job
    assert shown.resolved_precision == resolved
