"""The lifecycle of training jobs on one training service: submit, queue, run, cancel, resume,
recover — with the registry run as every job's durable state.

Each job is a registry run with the same id; its `config` holds {"spec": TrainSpec JSON, ...}.
State changes go through TransitionRun (legal transitions only, enforced by the registry), and
every event (state changes, metrics, logs, checkpoints) gets its sequence from the job's
event hub, which batches it into the run's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument, NotFound
from tunix_rt.training import completion_eval, job_spec
from tunix_rt.training import worker_protocol as wp
from tunix_rt.training.devices import worker_environment
from tunix_rt.training.event_hub import FellBehind, JobEvents
from tunix_rt.training.registry_link import RegistryLink
from tunix_rt.training.scheduler import Device, Scheduler
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2

log = logging.getLogger(__name__)

QUEUED, RUNNING = run_pb2.RUN_STATE_QUEUED, run_pb2.RUN_STATE_RUNNING
SUCCEEDED, FAILED, CANCELLED = (
    run_pb2.RUN_STATE_SUCCEEDED,
    run_pb2.RUN_STATE_FAILED,
    run_pb2.RUN_STATE_CANCELLED,
)
TERMINAL = {SUCCEEDED, FAILED, CANCELLED}
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass
class LiveJob:
    """What this service knows about a job beyond its run record."""

    job_id: str
    spec: TrainSpec
    events: JobEvents
    attempt: int = 0
    phase: str = ""
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    latest_metrics: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    latest_checkpoint: str = ""
    registered_version: str = ""
    evaluation: str = ""  # the completion evaluation's name
    evaluation_error: tuple[str, str] | None = None  # (gRPC code name, message)
    failure: tuple[str, str, dict[str, str]] | None = None
    cancel_reason: str | None = None
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0  # monotonic time training started, for the ETA
    first_step: int = 0


class JobManager:
    """Owns the queue and the workers of this service; driven from the event loop only."""

    def __init__(
        self,
        registry: RegistryLink,
        scheduler: Scheduler,
        data_dir: Path,
        owner: str,
        host: str,
        cores_per_slot: int = 1,
        kill_grace_seconds: float = 10.0,
        inference_address: str = "",
    ) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.data_dir = data_dir
        self.owner = owner
        self.host = host
        self.cores_per_slot = cores_per_slot
        self.kill_grace_seconds = kill_grace_seconds
        # Where evaluation on completion is sent; empty: jobs cannot ask for it.
        self.inference_address = inference_address
        self.jobs: dict[str, LiveJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutting_down = False

    # Lifecycle of the service.

    async def recover(self) -> None:
        """Requeues this service's runs that were RUNNING when it stopped (their workers died
        with it) and queues its QUEUED ones again, so no job stays stuck and no device held."""
        for run in await self.registry.runs([QUEUED, RUNNING], self.owner):
            job_id = run.name.removeprefix("runs/")
            config = json_format.MessageToDict(run.config)
            spec = TrainSpec.from_json(config["spec"])
            live = self._live(job_id, spec, run.last_sequence)
            live.attempt = int(config.get("attempt", 0))
            if run.state == RUNNING:
                await self._transition(
                    live,
                    QUEUED,
                    RUNNING,
                    "the training service restarted; resuming from the latest checkpoint",
                )
            self.scheduler.submit(
                job_id, job_spec.device_request_of(job_spec.job_from_spec(spec)), spec.priority
            )
        self._kick()

    async def close(self) -> None:
        """Stops every worker; their jobs go back to QUEUED so the next start resumes them."""
        self._shutting_down = True
        for live in self.jobs.values():
            if live.process is not None and live.process.returncode is None:
                live.process.send_signal(signal.SIGTERM)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.kill_grace_seconds + 5)
        for live in self.jobs.values():
            if not live.events.closed:
                with contextlib.suppress(Exception):
                    await live.events.close()

    # Submission.

    async def create(
        self, job: Any, job_id: str, request_id: str, validate_only: bool
    ) -> tuple[LiveJob | None, run_pb2.Run | None, TrainSpec]:
        job_id = job_id or uuid.uuid4().hex[:16]
        if len(job_id) > 128 or not set(job_id) <= ID_CHARS or not job_id[0].isalnum():
            raise InvalidArgument.field(
                "training_job_id", "must be 1-128 letters, digits, '-', '_' or '.'"
            )
        request = job_spec.device_request_of(job)
        kind = self.scheduler.check_fits_host(request)
        base_version, base_artifact = "", ""
        if job.WhichOneof("base_model") == "base_model_version":
            resolved = await self.registry.call(
                job.base_model_version,
                "ResolveModelVersion",
                rpb.ResolveModelVersionRequest(reference=job.base_model_version),
            )
            base_version = resolved.model_version.name
            base_artifact = resolved.model_version.artifact
        spec = job_spec.spec_from_job(job, job_id, kind, request.count, base_artifact, base_version)
        if spec.completion_evaluation and not (
            spec.completion_evaluation.get("inference_address") or self.inference_address
        ):
            raise FailedPrecondition(
                "evaluation on completion needs an inference service: start the training "
                "service with --inference ADDR (or TUNIX_RT_INFERENCE), or set "
                "completion_evaluation.inference_address",
                reason="INFERENCE_UNAVAILABLE",
            )
        await self.registry.call(
            spec.dataset, "GetDataset", rpb.GetDatasetRequest(name=spec.dataset)
        )
        if (
            spec.base.checkpoint_dir
            and not (Path(spec.base.checkpoint_dir) / "config.json").is_file()
        ):
            raise InvalidArgument.field(
                "training_job.checkpoint_dir", "has no config.json on this training host"
            )
        if validate_only:
            return None, None, spec
        config = struct_pb2.Struct()
        config.update({"spec": spec.to_json(), "attempt": 0})
        run = (
            await self.registry.call(
                f"runs/{job_id}",
                "CreateRun",
                rpb.CreateRunRequest(
                    run=run_pb2.Run(
                        display_name=spec.display_name,
                        dataset=spec.dataset,
                        config=config,
                        owner=self.owner,
                        priority=spec.priority,
                        labels=spec.labels,
                    ),
                    run_id=job_id,
                    request_id=request_id,
                ),
            )
        ).run
        if job_id in self.jobs or run.state != QUEUED or run.last_sequence:
            # A repeated request (same request_id): the job exists already.
            return self.jobs.get(job_id), run, spec
        live = self._live(job_id, spec, run.last_sequence)
        self._emit_state(live, run_pb2.RUN_STATE_UNSPECIFIED, QUEUED, "submitted")
        self.scheduler.submit(job_id, request, spec.priority)
        self._kick()
        return live, run, spec

    def _live(self, job_id: str, spec: TrainSpec, last_sequence: int) -> LiveJob:
        run = f"runs/{job_id}"
        events = JobEvents(
            last_sequence,
            sink=lambda batch: self.registry.append_events(run, batch),
            history=lambda first, last: self.registry.history(run, first, last),
        )
        live = LiveJob(job_id, spec, events)
        self.jobs[job_id] = live
        return live

    # Events.

    def _emit_state(self, live: LiveJob, before: int, after: int, reason: str) -> None:
        live.events.emit(
            run_pb2.RunEvent(
                time=_now(),
                step=live.step,
                state_change=run_pb2.StateChange(
                    from_state=before,  # type: ignore[arg-type]
                    to_state=after,  # type: ignore[arg-type]
                    reason=reason,
                ),
            )
        )

    def _emit_log(self, live: LiveJob, message: str, level: str = "INFO") -> None:
        live.events.emit(
            run_pb2.RunEvent(
                time=_now(), step=live.step, log=run_pb2.LogLine(level=level, message=message)
            )
        )

    async def _transition(
        self,
        live: LiveJob,
        state: int,
        expected: int,
        reason: str,
        devices: run_pb2.DeviceAssignment | None = None,
        config_update: dict[str, Any] | None = None,
    ) -> run_pb2.Run:
        update = struct_pb2.Struct()
        update.update(config_update or {})
        run: run_pb2.Run = (
            await self.registry.call(
                f"runs/{live.job_id}",
                "TransitionRun",
                rpb.TransitionRunRequest(
                    name=f"runs/{live.job_id}",
                    state=state,  # type: ignore[arg-type]
                    expected_state=expected,  # type: ignore[arg-type]
                    devices=devices,
                    reason=reason,
                    owner=self.owner,
                    config_update=update,
                ),
            )
        ).run
        self._emit_state(live, expected, state, reason)
        return run

    # Scheduling and workers.

    def _kick(self) -> None:
        if self._shutting_down:
            return
        for job_id, devices in self.scheduler.schedule():
            task = asyncio.get_running_loop().create_task(self._run(self.jobs[job_id], devices))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, live: LiveJob, devices: list[Device]) -> None:
        """Runs one attempt of a job on `devices` and records how it ended."""
        assignment = run_pb2.DeviceAssignment(
            kind=devices[0].kind,
            count=len(devices),
            ids=[d.id for d in devices],
            platform=devices[0].platform,
            host=self.host,
        )
        live.attempt += 1
        live.failure, live.cancel_reason, live.phase = None, None, "PREPARING"
        try:
            await self._transition(
                live,
                RUNNING,
                QUEUED,
                f"started on {', '.join(assignment.ids)}",
                devices=assignment,
                config_update={
                    "devices": json_format.MessageToDict(assignment),
                    "attempt": live.attempt,
                },
            )
        except Exception:
            log.exception("could not start job %s", live.job_id)
            self.scheduler.release(live.job_id)
            self._kick()
            return
        try:
            code = await self._work(live, assignment)
            if code == 0 and live.registered_version and live.cancel_reason is None:
                await self._evaluate_on_completion(live)
            await self._finish(live, code)
        except Exception as exc:  # the service itself failed: never leave the job RUNNING
            log.exception("job %s failed in the service", live.job_id)
            with contextlib.suppress(Exception):
                await self._transition(live, FAILED, RUNNING, f"training service error: {exc}")
        finally:
            live.process = None
            live.phase = ""
            self.scheduler.release(live.job_id)
            if not self._shutting_down:
                await live.events.close()
            self._kick()

    async def _work(self, live: LiveJob, assignment: run_pb2.DeviceAssignment) -> int:
        workdir = self.data_dir / "jobs" / live.job_id
        workdir.mkdir(parents=True, exist_ok=True)
        spec_path = workdir / "spec.json"
        spec_path.write_text(live.spec.dumps())
        env = {
            **os.environ,
            **worker_environment(assignment.kind, list(assignment.ids), self.cores_per_slot),
            "TUNIX_RT_DEVICES": json.dumps(json_format.MessageToDict(assignment)),
            # The worker asks the kernel to kill it when this process dies (see worker.py).
            "TUNIX_RT_PARENT_PID": str(os.getpid()),
        }
        log_path = workdir / f"worker-{live.attempt}.log"
        with await asyncio.to_thread(open, log_path, "ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tunix_rt.training.worker",
                "--spec",
                str(spec_path),
                "--workdir",
                str(workdir),
                "--registry",
                self.registry.address,
                "--run",
                f"runs/{live.job_id}",
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        live.process = process
        if live.cancel_reason is not None:  # cancelled while starting
            process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        async for line in process.stdout:
            event = wp.decode(line)
            if event is not None:
                await self._on_worker_event(live, event)
        return await process.wait()

    async def _on_worker_event(self, live: LiveJob, event: dict[str, Any]) -> None:
        kind = event["event"]
        now = time.monotonic()
        if kind == "metrics":
            step = int(event["step"])
            values = {k: float(v) for k, v in event["values"].items()}
            live.step = max(live.step, step)
            for name, value in values.items():
                live.latest_metrics[name] = (step, value, time.time())
            live.events.emit(
                run_pb2.RunEvent(
                    time=_now(), step=step, metrics=run_pb2.MetricValues(values=values)
                )
            )
        elif kind == "progress":
            if not live.started:
                live.started, live.first_step = now, int(event["step"])
            live.step = int(event["step"])
            live.total_steps = int(event["total_steps"])
            live.epoch = float(event.get("epoch", 0.0))
        elif kind == "phase":
            if live.cancel_reason is None:
                live.phase = str(event["phase"])
        elif kind == "log":
            self._emit_log(live, str(event["message"]), str(event.get("level", "INFO")))
        elif kind == "checkpoint":
            step = int(event["step"])
            metrics = {k: float(v) for k, v in event.get("metrics", {}).items()}
            checkpoint = await self.registry.call(
                f"runs/{live.job_id}",
                "CreateCheckpoint",
                rpb.CreateCheckpointRequest(
                    run=f"runs/{live.job_id}",
                    checkpoint=run_pb2.Checkpoint(
                        step=step, uri=str(event["path"]), metrics=metrics
                    ),
                ),
            )
            live.latest_checkpoint = checkpoint.checkpoint.name
            live.events.emit(
                run_pb2.RunEvent(
                    time=_now(),
                    step=step,
                    checkpoint_saved=run_pb2.CheckpointSaved(checkpoint=live.latest_checkpoint),
                )
            )
        elif kind == "registered":
            live.registered_version = str(event["model_version"])
            self._emit_log(live, f"registered {live.registered_version}")
        elif kind == "failed":
            metadata = {
                k: str(v) for k, v in event.items() if k not in ("event", "reason", "message")
            }
            live.failure = (str(event["reason"]), str(event["message"]), metadata)

    async def _evaluate_on_completion(self, live: LiveJob) -> None:
        """Evaluates the registered version when the job asked for it; the job still succeeds
        when the evaluation fails (its error is kept in the result)."""
        settings = live.spec.completion_evaluation
        if not settings or self._shutting_down:
            return
        live.phase = "EVALUATING_MODEL"
        address = str(settings.get("inference_address") or self.inference_address)
        request = completion_eval.request_of(
            settings, live.registered_version, live.spec.dataset, live.job_id
        )
        self._emit_log(live, f"evaluating {live.registered_version} on {live.spec.dataset}")
        outcome = await completion_eval.evaluate(
            address, request, lambda message: self._emit_log(live, message)
        )
        live.evaluation, live.evaluation_error = outcome.evaluation, outcome.error

    async def _finish(self, live: LiveJob, code: int) -> None:
        result: dict[str, Any] = {
            "evaluation": live.evaluation,
            "step": live.step,
            "total_steps": live.total_steps,
            "latest_checkpoint": live.latest_checkpoint,
            "registered_model_version": live.registered_version,
            "latest_metrics": {k: [s, v] for k, (s, v, _t) in live.latest_metrics.items()},
        }
        if live.evaluation_error is not None:
            result["evaluation_error"] = {
                "code": live.evaluation_error[0],
                "message": live.evaluation_error[1],
            }
        if self._shutting_down:
            await self._transition(
                live,
                QUEUED,
                RUNNING,
                "the training service shut down; will resume",
                config_update={"result": result},
            )
            return
        if live.cancel_reason is not None:
            await self._transition(
                live, CANCELLED, RUNNING, live.cancel_reason, config_update={"result": result}
            )
        elif code == 0 and live.registered_version:
            await self._transition(
                live,
                SUCCEEDED,
                RUNNING,
                f"registered {live.registered_version}",
                config_update={"result": result},
            )
        else:
            if live.failure is not None:
                reason, message, metadata = live.failure
                detail = f"{reason}: {message}"
                if "step" in metadata:
                    detail += f" (step {metadata['step']})"
            elif code < 0:
                detail = f"WORKER_KILLED: the worker was killed by {signal.Signals(-code).name}"
            else:
                detail = f"WORKER_EXITED: the worker exited with code {code}"
            result["failure"] = detail
            await self._transition(live, FAILED, RUNNING, detail, config_update={"result": result})

    # Commands.

    async def cancel(self, job_id: str, reason: str) -> None:
        reason = reason or "cancelled by a caller"
        if len(reason) > 1024:
            raise InvalidArgument.field("reason", "must be at most 1024 chars")
        run = await self.get_run(job_id)
        live = self.jobs.get(job_id)
        if run.state == CANCELLED:
            return
        if run.state in TERMINAL:
            raise FailedPrecondition(
                f"job already ended {run_pb2.RunState.Name(run.state)}", reason="JOB_ENDED"
            )
        if live is None:
            raise FailedPrecondition(
                f"job is owned by {run.owner!r}, not this training service", reason="NOT_OWNER"
            )
        if self.scheduler.remove(job_id):
            await self._transition(live, CANCELLED, QUEUED, reason)
            await live.events.close()
            return
        live.cancel_reason = reason
        live.phase = "STOPPING"
        process = live.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            asyncio.get_running_loop().call_later(self.kill_grace_seconds, _kill, process)

    async def resume(self, job_id: str) -> None:
        run = await self.get_run(job_id)
        if run.state not in (FAILED, CANCELLED):
            raise FailedPrecondition(
                "only FAILED or CANCELLED jobs resume; this one is "
                f"{run_pb2.RunState.Name(run.state)}",
                reason="NOT_RESUMABLE",
            )
        spec = TrainSpec.from_json(json_format.MessageToDict(run.config)["spec"])
        request = job_spec.device_request_of(job_spec.job_from_spec(spec))
        self.scheduler.check_fits_host(request)
        live = self._live(job_id, spec, run.last_sequence)
        live.attempt = int(json_format.MessageToDict(run.config).get("attempt", 0))
        await self._transition(live, QUEUED, run.state, "resumed from the latest checkpoint")
        self.scheduler.submit(job_id, request, spec.priority)
        self._kick()

    async def get_run(self, job_id: str) -> run_pb2.Run:
        run: run_pb2.Run = (
            await self.registry.call(
                f"trainingJobs/{job_id}", "GetRun", rpb.GetRunRequest(name=f"runs/{job_id}")
            )
        ).run
        if "spec" not in run.config.fields:
            raise NotFound("training job", f"trainingJobs/{job_id}")
        return run

    async def stream(
        self, job_id: str, from_sequence: int, history_only: bool
    ) -> AsyncIterator[run_pb2.RunEvent | FellBehind]:
        run = await self.get_run(job_id)
        live = self.jobs.get(job_id)
        if live is not None:
            # The hub replays the registry and its own unflushed window, then follows live.
            last = live.events.last_sequence
            if history_only and from_sequence > last:
                return
            async for item in live.events.stream(from_sequence):
                yield item
                if history_only and isinstance(item, run_pb2.RunEvent) and item.sequence >= last:
                    return
            return
        # Not live here: replay the registry; follow it while another service runs the job.
        next_seq = max(1, from_sequence)
        while True:
            async for event in self.registry.history(run.name, next_seq, 1 << 62):
                yield event
                next_seq = event.sequence + 1
            if history_only or run.state in TERMINAL:
                return
            await asyncio.sleep(0.5)
            run = await self.get_run(job_id)


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp
