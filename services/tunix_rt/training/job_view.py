"""A training job as its callers see it: the TrainingJob message made from the job's spec, its
registry run (the durable state, with the result recorded when an attempt ended) and, while this
service runs it, its live state (phase, step, estimated time remaining, metrics the run does not
have yet)."""

from __future__ import annotations

import time
from typing import Any

from google.protobuf import duration_pb2, json_format
from google.rpc import code_pb2

from tunix_rt.training import job_spec
from tunix_rt.training.live_job import LiveJob
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import backend_pb2, run_pb2, training_job_pb2

_PHASES = {
    name.removeprefix("TRAINING_JOB_PHASE_"): value
    for name, value in training_job_pb2.TrainingJobPhase.items()
}


def training_job(
    spec: TrainSpec,
    run: run_pb2.Run | None = None,
    live: LiveJob | None = None,
    queue_position: int = 0,
) -> training_job_pb2.TrainingJob:
    """The TrainingJob message of a job: its spec, with `run` its run record (None for a job
    only validated, which has none) and `live` what this service knows while it runs the job."""
    job = job_spec.job_from_spec(spec)
    job.name = f"trainingJobs/{spec.job_id}"
    job.run = f"runs/{spec.job_id}"
    job.resolved_backend = job_spec.BACKEND_ENUM[spec.backend]
    job.resolved_precision = _resolved_precision(spec)
    if run is None:
        return job
    _add_run(job, run)
    if live is not None:
        _add_live(job, run.state, live, queue_position)
    return job


def _resolved_precision(spec: TrainSpec) -> backend_pb2.Precision:
    """What the backends do with the requested precision: `auto` is float32 on CPUs and mixed
    bfloat16 elsewhere; torch has no pure-bfloat16 training, so its `bfloat16` is mixed."""
    precision = spec.hyper.precision
    if precision == "auto":
        precision = "float32" if spec.device_kind == "cpu" else "mixed_bfloat16"
    if precision == "bfloat16" and spec.backend == "torch":
        precision = "mixed_bfloat16"
    return job_spec.PRECISION_ENUM[precision]


def _add_run(job: training_job_pb2.TrainingJob, run: run_pb2.Run) -> None:
    """The run's state and the result its last attempt recorded."""
    config = json_format.MessageToDict(run.config)
    result: dict[str, Any] = config.get("result", {})
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
    job.epoch = float(result.get("epoch", 0.0))
    job.latest_checkpoint = result.get("latest_checkpoint", "")
    job.registered_model_version = result.get("registered_model_version", "")
    job.evaluation = result.get("evaluation", "")
    if "evaluation_error" in result:
        error = result["evaluation_error"]
        job.evaluation_error.code = getattr(
            code_pb2, error.get("code", "UNKNOWN"), code_pb2.UNKNOWN
        )
        job.evaluation_error.message = error.get("message", "")
    for name, (step, value) in result.get("latest_metrics", {}).items():
        job.latest_metrics[name].step = int(step)
        job.latest_metrics[name].value = float(value)


def _add_live(
    job: training_job_pb2.TrainingJob, state: int, live: LiveJob, queue_position: int
) -> None:
    """What this service knows beyond the run: newer than the run's record while it runs."""
    if state == run_pb2.RUN_STATE_QUEUED:
        job.queue_position = queue_position
    if state == run_pb2.RUN_STATE_RUNNING:
        job.phase = _PHASES.get(live.phase, 0)  # type: ignore[assignment]
        job.step, job.total_steps, job.epoch = live.step, live.total_steps, live.epoch
        remaining = _seconds_remaining(live)
        if remaining is not None:
            job.estimated_time_remaining.CopyFrom(duration_pb2.Duration(seconds=remaining))
        job.latest_checkpoint = live.latest_checkpoint or job.latest_checkpoint
        job.last_sequence = max(job.last_sequence, live.events.last_published)
        for name, (step, value, when) in live.latest_metrics.items():
            point = job.latest_metrics[name]
            point.step, point.value = step, value
            point.time.FromNanoseconds(int(when * 1e9))
    job.attempt = max(job.attempt, live.attempt)
    job.registered_model_version = live.registered_version or job.registered_model_version


def carry_over(live: LiveJob, config: dict[str, Any]) -> str:
    """Gives a resumed job's new LiveJob what its last attempt left in the run's `config` (the
    attempt count, the latest checkpoint) and returns the reason of its state change: where the
    next attempt continues. The worker restores the newest checkpoint of the job's directory,
    which is the one the last attempt recorded."""
    live.attempt = int(config.get("attempt", 0))
    live.latest_checkpoint = config.get("result", {}).get("latest_checkpoint", "")
    if live.latest_checkpoint:
        return f"resumed from the latest checkpoint, {live.latest_checkpoint}"
    return "resumed from the start: the job saved no checkpoint"


def _seconds_remaining(live: LiveJob) -> int | None:
    """The remaining steps at the mean step time of this attempt so far; None before its
    second reported step."""
    if not (live.started and live.step > live.first_step and live.total_steps):
        return None
    per_step = (time.monotonic() - live.started) / (live.step - live.first_step)
    return int(per_step * (live.total_steps - live.step))
