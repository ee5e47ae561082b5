"""The TrainingService servicer: proto in → JobManager → proto out. Thin by design."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.rpc import code_pb2

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.training import backend_choice, job_spec, presets
from tunix_rt.training.event_hub import FellBehind
from tunix_rt.training.jobs import JobManager, LiveJob
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import (
    backend_pb2,
    device_pb2,
    run_pb2,
    training_job_pb2,
    training_service_pb2_grpc,
)
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import (
    training_service_pb2 as pb,
)

_PHASES = {
    name.removeprefix("TRAINING_JOB_PHASE_"): value
    for name, value in training_job_pb2.TrainingJobPhase.items()
}
_BACKENDS = {"jax": backend_pb2.BACKEND_JAX, "torch": backend_pb2.BACKEND_TORCH}
_KINDS = {
    "cpu": device_pb2.DEVICE_KIND_CPU,
    "gpu": device_pb2.DEVICE_KIND_GPU,
    "tpu": device_pb2.DEVICE_KIND_TPU,
}


def _job_id(name: str, field: str = "name") -> str:
    job_id = name.removeprefix("trainingJobs/")
    if not job_id or "/" in job_id:
        raise InvalidArgument.field(field, "must be 'trainingJobs/{training_job}'")
    return job_id


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.fromtimestamp(seconds, UTC))
    return stamp


class TrainingServicer(training_service_pb2_grpc.TrainingServiceServicer):
    """Serves tunix_rt.v1.TrainingService over a JobManager."""

    def __init__(self, manager: JobManager) -> None:
        self._jobs = manager

    def view(self, run: run_pb2.Run | None, spec: TrainSpec, live: LiveJob | None) -> Any:
        """The TrainingJob message of a job: its spec, its run record and live detail."""
        job = job_spec.job_from_spec(spec)
        job.name = f"trainingJobs/{spec.job_id}"
        job.run = f"runs/{spec.job_id}"
        job.resolved_backend = _BACKENDS[spec.backend]
        job.resolved_precision = (
            backend_pb2.PRECISION_FLOAT32
            if spec.device_kind == "cpu"
            else (backend_pb2.PRECISION_MIXED_BFLOAT16)
        )
        if run is None:  # validate_only
            return job
        config = json_format.MessageToDict(run.config)
        result = config.get("result", {})
        job.state = run.state
        job.owner = run.owner
        job.devices.CopyFrom(run.devices)
        if run.HasField("error") and (run.error.code or run.error.message):
            job.error.CopyFrom(run.error)
        job.last_sequence = run.last_sequence
        job.attempt = int(config.get("attempt", 0))
        for field in ("create_time", "start_time", "end_time", "update_time"):
            if run.HasField(field):
                getattr(job, field).CopyFrom(getattr(run, field))
        job.step = int(result.get("step", 0))
        job.total_steps = int(result.get("total_steps", 0))
        job.latest_checkpoint = result.get("latest_checkpoint", "")
        job.registered_model_version = result.get("registered_model_version", "")
        job.evaluation = result.get("evaluation", "")
        if "evaluation_error" in result:
            error = result["evaluation_error"]
            job.evaluation_error.code = getattr(code_pb2, error.get("code", "UNKNOWN"), 2)
            job.evaluation_error.message = error.get("message", "")
        for name, (step, value) in result.get("latest_metrics", {}).items():
            job.latest_metrics[name].step = int(step)
            job.latest_metrics[name].value = float(value)
        if live is None:
            return job
        if run.state == run_pb2.RUN_STATE_QUEUED:
            job.queue_position = self._jobs.scheduler.queue_position(spec.job_id)
        if run.state == run_pb2.RUN_STATE_RUNNING:
            job.phase = _PHASES.get(live.phase, 0)  # type: ignore[assignment]
            job.step, job.total_steps, job.epoch = live.step, live.total_steps, live.epoch
            if live.started and live.step > live.first_step and live.total_steps:
                per_step = (time.monotonic() - live.started) / (live.step - live.first_step)
                job.estimated_time_remaining.CopyFrom(
                    duration_pb2.Duration(seconds=int(per_step * (live.total_steps - live.step)))
                )
            job.latest_checkpoint = live.latest_checkpoint or job.latest_checkpoint
            job.last_sequence = max(job.last_sequence, live.events.last_sequence)
            for name, (step, value, when) in live.latest_metrics.items():
                point = job.latest_metrics[name]
                point.step, point.value = step, value
                point.time.CopyFrom(_stamp(when))
        job.attempt = max(job.attempt, live.attempt)
        job.registered_model_version = live.registered_version or job.registered_model_version
        return job

    async def _view_of(self, job_id: str) -> Any:
        run = await self._jobs.get_run(job_id)
        spec = TrainSpec.from_json(json_format.MessageToDict(run.config)["spec"])
        return self.view(run, spec, self._jobs.jobs.get(job_id))

    async def CreateTrainingJob(self, request: pb.CreateTrainingJobRequest, context: Any) -> Any:
        _live, run, spec = await self._jobs.create(
            request.training_job,
            request.training_job_id,
            request.request_id,
            request.validate_only,
        )
        if run is None:
            return pb.CreateTrainingJobResponse(training_job=self.view(None, spec, None))
        return pb.CreateTrainingJobResponse(training_job=await self._view_of(spec.job_id))

    async def GetTrainingJob(self, request: pb.GetTrainingJobRequest, context: Any) -> Any:
        return pb.GetTrainingJobResponse(training_job=await self._view_of(_job_id(request.name)))

    async def ListTrainingJobs(self, request: pb.ListTrainingJobsRequest, context: Any) -> Any:
        response = await self._jobs.registry.call(
            "runs",
            "ListRuns",
            rpb.ListRunsRequest(
                states=request.states,
                owner=request.owner,
                dataset=request.dataset,
                page_size=request.page_size,
                page_token=request.page_token,
            ),
        )
        jobs = []
        for run in response.runs:
            config = json_format.MessageToDict(run.config)
            if "spec" not in config:
                continue  # a run not made by a training service
            spec = TrainSpec.from_json(config["spec"])
            if request.model and spec.registration.model != request.model:
                continue
            jobs.append(self.view(run, spec, self._jobs.jobs.get(spec.job_id)))
        return pb.ListTrainingJobsResponse(
            training_jobs=jobs, next_page_token=response.next_page_token
        )

    async def CancelTrainingJob(self, request: pb.CancelTrainingJobRequest, context: Any) -> Any:
        job_id = _job_id(request.name)
        await self._jobs.cancel(job_id, request.reason)
        return pb.CancelTrainingJobResponse(training_job=await self._view_of(job_id))

    async def ResumeTrainingJob(self, request: pb.ResumeTrainingJobRequest, context: Any) -> Any:
        job_id = _job_id(request.name)
        await self._jobs.resume(job_id)
        return pb.ResumeTrainingJobResponse(training_job=await self._view_of(job_id))

    async def StreamJobMetrics(
        self, request: pb.StreamJobMetricsRequest, context: Any
    ) -> AsyncIterator[Any]:
        if request.from_sequence < 0:
            raise InvalidArgument.field("from_sequence", "must be at least 0")
        async for item in self._jobs.stream(
            _job_id(request.name), request.from_sequence, request.history_only
        ):
            if isinstance(item, FellBehind):
                yield pb.StreamJobMetricsResponse(
                    fell_behind=pb.FellBehind(
                        last_delivered_sequence=item.last_delivered, latest_sequence=item.latest
                    )
                )
                return
            yield pb.StreamJobMetricsResponse(run_event=item)

    async def ListDevices(self, request: pb.ListDevicesRequest, context: Any) -> Any:
        devices = []
        for device in self._jobs.scheduler.devices:
            kind = _KINDS[device.kind]
            if request.kind and request.kind != kind:
                continue
            message = device_pb2.Device(
                id=device.id,
                kind=kind,
                platform=device.platform,
                description=device.description,
                memory_bytes=device.memory_bytes,
                host=self._jobs.host,
                state=device_pb2.DEVICE_STATE_ALLOCATED
                if device.holder
                else device_pb2.DEVICE_STATE_AVAILABLE,
                training_job=f"trainingJobs/{device.holder}" if device.holder else "",
                backends=[_BACKENDS[b] for b in backend_choice.supported(device.kind)],
                supports_bfloat16=device.supports_bfloat16,
            )
            if device.allocate_time is not None:
                wall = time.time() - (time.monotonic() - device.allocate_time)
                message.allocate_time.CopyFrom(_stamp(wall))
            devices.append(message)
        return pb.ListDevicesResponse(devices=devices, host=self._jobs.host)

    async def ListArchitecturePresets(
        self, request: pb.ListArchitecturePresetsRequest, context: Any
    ) -> Any:
        listed = []
        for preset in presets.as_protos():
            if request.family and preset.family != request.family:
                continue
            # Every preset family is a transformers architecture too.
            if backend_pb2.BACKEND_TORCH not in preset.backends:
                preset.backends.append(backend_pb2.BACKEND_TORCH)
            listed.append(preset)
        return pb.ListArchitecturePresetsResponse(presets=listed)
