"""Helpers for training-service tests: submitting tiny jobs and waiting on them."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tunix_rt.v1 import device_pb2, run_pb2, training_job_pb2
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import training_service_pb2 as tpb

TERMINAL = {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED}


def tiny_job(dataset: str, backend: str = "", **hyper: Any) -> training_job_pb2.TrainingJob:
    """A job that trains the tiny preset for a few steps on CPU; `backend` "jax" or "torch"
    pins it, "" leaves the choice to the service."""
    params: dict[str, Any] = {
        "max_steps": 12,
        "batch_size": 4,
        "max_seq_len": 128,
        "learning_rate": 3e-3,
        "eval_interval_steps": 0,
        "checkpoint_interval_steps": 4,
        "eval_max_examples": 4,
        "eval_max_new_tokens": 16,
        "seed": 7,
    }
    params.update(hyper)
    devices = params.pop("devices", "cpu:1")
    kind, count = devices.split(":")
    job = training_job_pb2.TrainingJob(
        dataset=dataset,
        preset="llama3-tiny",
        hyperparameters=training_job_pb2.Hyperparameters(**params),
        device_request=device_pb2.DeviceRequest(
            kind=f"DEVICE_KIND_{kind.upper()}", count=int(count)
        ),
    )
    if backend:
        job.backend = f"BACKEND_{backend.upper()}"  # type: ignore[assignment]
    return job


def submit(stub: Any, job: training_job_pb2.TrainingJob, job_id: str = "") -> Any:
    request = tpb.CreateTrainingJobRequest(training_job=job, training_job_id=job_id)
    return stub.CreateTrainingJob(request).training_job


def get(stub: Any, name: str) -> Any:
    return stub.GetTrainingJob(tpb.GetTrainingJobRequest(name=name)).training_job


def wait_for(stub: Any, name: str, states: set[Any], timeout: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = get(stub, name)
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name} still {run_pb2.RunState.Name(job.state)} after {timeout}s"
            )
        time.sleep(0.2)


def wait_until(predicate: Any, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def history(registry_stub: Any, run: str) -> list[run_pb2.RunEvent]:
    events: list[run_pb2.RunEvent] = []
    token = ""
    while True:
        response = registry_stub.ListRunEvents(
            rpb.ListRunEventsRequest(run=run, page_size=1000, page_token=token)
        )
        events.extend(response.events)
        token = response.next_page_token
        if not token:
            return events


def losses(events: list[run_pb2.RunEvent]) -> dict[int, float]:
    return {
        e.step: e.metrics.values["loss"]
        for e in events
        if e.WhichOneof("payload") == "metrics" and "loss" in e.metrics.values
    }


def violations(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def free_devices(stub: Any) -> int:
    devices = stub.ListDevices(tpb.ListDevicesRequest()).devices
    return sum(1 for d in devices if d.state == device_pb2.DEVICE_STATE_AVAILABLE)
