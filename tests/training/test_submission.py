"""Submitting jobs: validation and refusals happen at once, before any worker starts."""

from __future__ import annotations

import grpc
import pytest

from tests.training.conftest import Stack
from tests.training.helpers import submit, tiny_job, violations
from tunix_rt.v1 import device_pb2, training_job_pb2
from tunix_rt.v1 import training_service_pb2 as tpb


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
