"""The TrainingService servicer: proto in → JobManager (or SweepManager) → proto out. Thin by
design: job views and listing are the job manager's (job_view, job_listing), sweeps the sweeps
package's, presets and the backends that build them the models package's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.models import presets
from tunix_rt.training import backend_choice
from tunix_rt.training.event_hub import FellBehind
from tunix_rt.training.job_listing import JobFilter
from tunix_rt.training.job_spec import BACKEND_ENUM
from tunix_rt.training.jobs import JobManager
from tunix_rt.training.sweeps.manager import SweepManager
from tunix_rt.v1 import device_pb2, training_service_pb2_grpc
from tunix_rt.v1 import training_service_pb2 as pb

_KINDS = {
    "cpu": device_pb2.DEVICE_KIND_CPU,
    "gpu": device_pb2.DEVICE_KIND_GPU,
    "tpu": device_pb2.DEVICE_KIND_TPU,
}


def _sweep_id(name: str) -> str:
    sweep_id = name.removeprefix("sweeps/")
    if not sweep_id or "/" in sweep_id or sweep_id == name:
        raise InvalidArgument.field("name", "must be 'sweeps/{sweep}'")
    return sweep_id


def _job_id(name: str, field: str = "name") -> str:
    job_id = name.removeprefix("trainingJobs/")
    if not job_id or "/" in job_id:
        raise InvalidArgument.field(field, "must be 'trainingJobs/{training_job}'")
    return job_id


class TrainingServicer(training_service_pb2_grpc.TrainingServiceServicer):
    """Serves tunix_rt.v1.TrainingService over a JobManager."""

    def __init__(self, manager: JobManager, sweeps: SweepManager) -> None:
        self._jobs = manager
        self._sweeps = sweeps

    async def CreateTrainingJob(self, request: pb.CreateTrainingJobRequest, context: Any) -> Any:
        job = await self._jobs.create(
            request.training_job,
            request.training_job_id,
            request.request_id,
            request.validate_only,
        )
        return pb.CreateTrainingJobResponse(training_job=job)

    async def GetTrainingJob(self, request: pb.GetTrainingJobRequest, context: Any) -> Any:
        return pb.GetTrainingJobResponse(training_job=await self._jobs.view(_job_id(request.name)))

    async def ListTrainingJobs(self, request: pb.ListTrainingJobsRequest, context: Any) -> Any:
        filters = JobFilter(
            states=tuple(request.states),
            owner=request.owner,
            dataset=request.dataset,
            model=request.model,
        )
        jobs, token = await self._jobs.list_jobs(filters, request.page_size, request.page_token)
        return pb.ListTrainingJobsResponse(training_jobs=jobs, next_page_token=token)

    async def CancelTrainingJob(self, request: pb.CancelTrainingJobRequest, context: Any) -> Any:
        job_id = _job_id(request.name)
        await self._jobs.cancel(job_id, request.reason)
        return pb.CancelTrainingJobResponse(training_job=await self._jobs.view(job_id))

    async def ResumeTrainingJob(self, request: pb.ResumeTrainingJobRequest, context: Any) -> Any:
        job_id = _job_id(request.name)
        await self._jobs.resume(job_id)
        return pb.ResumeTrainingJobResponse(training_job=await self._jobs.view(job_id))

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
                host=device.host or self._jobs.host,
                state=device_pb2.DEVICE_STATE_ALLOCATED
                if device.holder
                else device_pb2.DEVICE_STATE_AVAILABLE,
                training_job=f"trainingJobs/{device.holder}" if device.holder else "",
                backends=[BACKEND_ENUM[b] for b in backend_choice.supported(device.kind)],
                supports_bfloat16=device.supports_bfloat16,
                peak_flops_fp32=device.peak_flops_fp32,
                peak_flops_bf16=device.peak_flops_bf16,
                peak_flops_source=device.peak_flops_source,
            )
            if device.allocate_time is not None:
                # allocate_time is monotonic: shift it onto the wall clock.
                wall = time.time() - (time.monotonic() - device.allocate_time)
                message.allocate_time.FromNanoseconds(int(wall * 1e9))
            devices.append(message)
        return pb.ListDevicesResponse(devices=devices, host=self._jobs.host)

    async def ListArchitecturePresets(
        self, request: pb.ListArchitecturePresetsRequest, context: Any
    ) -> Any:
        listed = [
            p for p in presets.as_protos() if not request.family or p.family == request.family
        ]
        return pb.ListArchitecturePresetsResponse(presets=listed)

    # Sweeps.

    async def CreateSweep(self, request: pb.CreateSweepRequest, context: Any) -> Any:
        sweep = await self._sweeps.create(
            request.sweep, request.sweep_id, request.request_id, request.validate_only
        )
        return pb.CreateSweepResponse(sweep=sweep)

    async def GetSweep(self, request: pb.GetSweepRequest, context: Any) -> Any:
        return pb.GetSweepResponse(sweep=await self._sweeps.view(_sweep_id(request.name)))

    async def ListSweeps(self, request: pb.ListSweepsRequest, context: Any) -> Any:
        sweeps, token = await self._sweeps.list_sweeps(
            list(request.states), request.page_size, request.page_token
        )
        return pb.ListSweepsResponse(sweeps=sweeps, next_page_token=token)

    async def CancelSweep(self, request: pb.CancelSweepRequest, context: Any) -> Any:
        sweep_id = _sweep_id(request.name)
        await self._sweeps.cancel(sweep_id, request.reason)
        return pb.CancelSweepResponse(sweep=await self._sweeps.view(sweep_id))

    async def StreamSweep(self, request: pb.StreamSweepRequest, context: Any) -> AsyncIterator[Any]:
        if request.from_sequence < 0:
            raise InvalidArgument.field("from_sequence", "must be at least 0")
        async for event in self._sweeps.stream(
            _sweep_id(request.name), request.from_sequence, request.history_only
        ):
            yield pb.StreamSweepResponse(sweep_event=event)
