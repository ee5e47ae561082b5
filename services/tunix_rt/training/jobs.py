"""The lifecycle of training jobs on one training service: submit, queue, run, cancel, resume,
recover, and the jobs' views — with the registry run as every job's durable state.

Each job is a registry run with the same id; its `config` holds {"spec": TrainSpec JSON, ...}.
State changes go through TransitionRun (legal transitions only, enforced by the registry); every
event gets its sequence from the job's event hub, which batches it into the run's history. The
rest is a LiveJob (live_job.py); each attempt runs through the executor (executors/): a worker
process here, or ranks on a Ray cluster's nodes.

A job's end is read-after-write consistent: its events are stored before the registry makes it
terminal and its final state change before any stream delivers it; a caller that sees the end
here (a view, a list, a resume) waits for that event, so it finds the whole history stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument, NotFound
from tunix_rt.training import completion_eval, job_listing, job_spec, worker_process
from tunix_rt.training.event_hub import FellBehind, JobEvents
from tunix_rt.training.executors.base import Executor, LocalExecutor, assignment_of, nodes_of
from tunix_rt.training.inventory_watch import InventoryWatch
from tunix_rt.training.job_listing import JobFilter
from tunix_rt.training.job_view import carry_over, training_job
from tunix_rt.training.live_job import LiveJob
from tunix_rt.training.registry_link import RegistryLink
from tunix_rt.training.scheduler import Device, Scheduler
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2, training_job_pb2

log = logging.getLogger(__name__)

QUEUED, RUNNING = run_pb2.RUN_STATE_QUEUED, run_pb2.RUN_STATE_RUNNING
SUCCEEDED, FAILED = run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED
CANCELLED, PRUNED = run_pb2.RUN_STATE_CANCELLED, run_pb2.RUN_STATE_PRUNED
TERMINAL = {SUCCEEDED, FAILED, CANCELLED, PRUNED}
# How long a caller that sees a job end waits for its final state change to be stored: storing
# it is one AppendRunEvents call; this bounds the wait when the registry fails meanwhile.
FINAL_EVENT_WAIT = 10.0
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


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
        event_flush_interval: float | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.registry = registry
        self.executor: Executor = executor or LocalExecutor(scheduler.devices)
        self.scheduler = scheduler
        self.data_dir = data_dir
        self.owner = owner
        self.host = host
        self.cores_per_slot = cores_per_slot
        self.kill_grace_seconds = kill_grace_seconds
        # Where evaluation on completion is sent; empty: jobs cannot ask for it.
        self.inference_address = inference_address
        self.event_flush_interval = event_flush_interval
        self.jobs: dict[str, LiveJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutting_down = False
        self._inventory = InventoryWatch(self.executor, self._kick)  # a cluster's nodes change

    # Lifecycle of the service.

    async def recover(self) -> None:
        """Requeues this service's runs that were RUNNING when it stopped (their workers died
        with it) and queues its QUEUED ones again, so no job stays stuck and no device held."""
        for run in await self.registry.runs([QUEUED, RUNNING], self.owner):
            job_id = run.name.removeprefix("runs/")
            config = json_format.MessageToDict(run.config)
            if "spec" not in config:  # a sweep's run: the sweeps recover it (sweeps/manager.py)
                continue
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
            request = job_spec.device_request_of(job_spec.job_from_spec(spec))
            # A cluster may not be back yet, or be smaller: its jobs wait for it.
            check = self.executor.inventory_interval == 0
            self.scheduler.submit(job_id, request, spec.priority, check=check)
        self._kick()
        self._inventory.start()

    async def close(self) -> None:
        """Stops every worker; their jobs go back to QUEUED so the next start resumes them."""
        self._shutting_down = True
        await self._inventory.stop()
        for live in self.jobs.values():
            if live.process is not None:
                live.process.ask_to_stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.kill_grace_seconds + 5)
        for live in self.jobs.values():
            if not live.events.closed:
                with contextlib.suppress(Exception):
                    await live.events.close()
        await self.executor.close()

    # Submission.

    async def create(
        self, job: Any, job_id: str, request_id: str, validate_only: bool
    ) -> training_job_pb2.TrainingJob:
        """Validates and queues a job (only validates with `validate_only`); the job's view."""
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
            return training_job(spec)
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
        # A repeated request (same request_id) gets the job that exists already.
        if job_id not in self.jobs and run.state == QUEUED and not run.last_sequence:
            live = self._live(job_id, spec, run.last_sequence)
            live.emit_state(run_pb2.RUN_STATE_UNSPECIFIED, QUEUED, "submitted")
            self.scheduler.submit(job_id, request, spec.priority)
            self._kick()
        return await self.view(job_id)

    def _live(self, job_id: str, spec: TrainSpec, last_sequence: int) -> LiveJob:
        run = f"runs/{job_id}"
        events = JobEvents(
            last_sequence,
            sink=lambda batch: self.registry.append_events(run, batch),
            history=lambda first, last: self.registry.history(run, first, last),
            flush_interval=self.event_flush_interval,
        )
        live = LiveJob(job_id, spec, events)
        self.jobs[job_id] = live
        return live

    async def _transition(
        self,
        live: LiveJob,
        state: int,
        expected: int,
        reason: str,
        devices: run_pb2.DeviceAssignment | None = None,
        config_update: dict[str, Any] | None = None,
    ) -> run_pb2.Run:
        """Moves the job's run from `expected` to `state` and emits the state change; a terminal
        one ends the job's stream once the registry has stored all of its events."""
        final = state in TERMINAL
        if final:
            await live.prepare_end()
        try:
            run = await self.registry.transition(
                f"runs/{live.job_id}", state, expected, reason, self.owner, devices, config_update
            )
        except BaseException:
            live.ending = False
            raise
        if final:
            await live.emit_final_state(expected, state, reason)
        else:
            live.emit_state(expected, state, reason)
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
        assignment = assignment_of(devices, self.host)
        live.attempt += 1
        live.failure, live.cancel_reason, live.phase = None, None, "PREPARING"
        try:
            await self._transition(
                live,
                RUNNING,
                QUEUED,
                f"started on {', '.join(assignment.ids)}",
                devices=assignment,
                config_update={"devices": json_format.MessageToDict(assignment)}
                | nodes_of(devices)
                | {"attempt": live.attempt},
            )
        except Exception:
            log.exception("could not start job %s", live.job_id)
            self.scheduler.release(live.job_id)
            self._kick()
            return
        try:
            code = await self._work(live, assignment)
            ended_well = code == 0 and live.registered_version and live.cancel_reason is None
            if ended_well and not self._shutting_down:
                await completion_eval.evaluate_job(
                    live, self.registry.settings, self.inference_address
                )
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
                try:  # a no-op after a terminal state change, which closed it already
                    await live.events.close()
                except Exception:  # the registry is down: the job's run still ended
                    log.warning("could not store the events of job %s", live.job_id, exc_info=True)
                if live.requeued:
                    await self._requeue(live)
            self._kick()

    async def _requeue(self, live: LiveJob) -> None:
        """Queues a job whose attempt was interrupted (a node or the cluster lost) again, to
        resume from its latest checkpoint on the devices it gets next. It waits even when what
        is left of the cluster never fits it now: a cluster's inventory grows back."""
        again = self._live(live.job_id, live.spec, live.events.last_sequence)
        again.attempt = live.attempt
        request = job_spec.device_request_of(job_spec.job_from_spec(live.spec))
        self.scheduler.submit(live.job_id, request, live.spec.priority, check=False)

    async def _work(self, live: LiveJob, assignment: run_pb2.DeviceAssignment) -> int:
        """Runs the attempt's worker to its end, applying its reports; its exit code."""
        process = await self.executor.start(
            live.spec,
            self.data_dir / "jobs" / live.job_id,
            live.attempt,
            self.registry.address,
            assignment,
            self.cores_per_slot,
            # The worker dials the registry as this service does (token, TLS CA).
            self.registry.settings.environment(),
        )
        live.process = process
        try:
            if live.cancel_reason is not None:  # cancelled while starting
                process.stop(self.kill_grace_seconds)
            async for event in process.reports():
                await self._on_worker_event(live, event)
            return await process.wait()
        finally:
            await process.close()

    async def _on_worker_event(self, live: LiveJob, event: dict[str, Any]) -> None:
        if event["event"] != "checkpoint":
            live.apply(event)
            return
        # A saved checkpoint is recorded in the registry first; its event names the record.
        step = int(event["step"])
        metrics = {k: float(v) for k, v in event.get("metrics", {}).items()}
        checkpoint = await self.registry.call(
            f"runs/{live.job_id}",
            "CreateCheckpoint",
            rpb.CreateCheckpointRequest(
                run=f"runs/{live.job_id}",
                checkpoint=run_pb2.Checkpoint(step=step, uri=str(event["path"]), metrics=metrics),
            ),
        )
        live.emit_checkpoint(step, checkpoint.checkpoint.name)

    async def _finish(self, live: LiveJob, code: int) -> None:
        result = live.result()
        why = live.process.interruption if live.process is not None else ""
        live.requeued = bool(why) and live.cancel_reason is None and not self._shutting_down
        # Registered before the shutdown: done (a requeued rerun would register a second time).
        if (self._shutting_down or live.requeued) and not (code == 0 and live.registered_version):
            reason = "the training service shut down; will resume"
            if live.requeued:
                reason = f"{why}; will resume"
            await self._transition(live, QUEUED, RUNNING, reason, config_update={"result": result})
            return
        if live.cancel_reason is not None:
            await self._transition(
                live, live.end_state, RUNNING, live.cancel_reason, config_update={"result": result}
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
            else:
                detail = worker_process.exit_detail(code)
            result["failure"] = detail
            await self._transition(live, FAILED, RUNNING, detail, config_update={"result": result})

    # Commands.

    async def cancel(self, job_id: str, reason: str, end_state: int = CANCELLED) -> None:
        """Stops the job and ends it `end_state`: CANCELLED, or PRUNED for a sweep's trial."""
        reason = reason or "cancelled by a caller"
        if len(reason) > 1024:
            raise InvalidArgument.field("reason", "must be at most 1024 chars")
        run = await self.get_run(job_id)
        live = self.jobs.get(job_id)
        if run.state == end_state:
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
            await self._transition(live, end_state, QUEUED, reason)  # closes the job's stream
            return
        live.cancel_reason, live.end_state, live.phase = reason, end_state, "STOPPING"
        if live.process is not None and live.process.returncode is None:
            live.process.stop(self.kill_grace_seconds)

    async def resume(self, job_id: str) -> None:
        run = await self.get_run(job_id)
        if run.state not in (FAILED, CANCELLED):
            raise FailedPrecondition(
                "only FAILED or CANCELLED jobs resume; this one is "
                f"{run_pb2.RunState.Name(run.state)}",
                reason="NOT_RESUMABLE",
            )
        config = json_format.MessageToDict(run.config)
        spec = TrainSpec.from_json(config["spec"])
        request = job_spec.device_request_of(job_spec.job_from_spec(spec))
        self.scheduler.check_fits_host(request)
        live = self._live(job_id, spec, run.last_sequence)
        await self._transition(live, QUEUED, run.state, carry_over(live, config))
        self.scheduler.submit(job_id, request, spec.priority)
        self._kick()

    async def get_run(self, job_id: str) -> run_pb2.Run:
        """The job's run; once its final state change is stored, when it has just ended here."""
        run = await self._read_run(job_id)
        if live := self._ending(run):
            await self._settle([live])
            run = await self._read_run(job_id)
        return run

    async def _read_run(self, job_id: str) -> run_pb2.Run:
        run: run_pb2.Run = (
            await self.registry.call(
                f"trainingJobs/{job_id}", "GetRun", rpb.GetRunRequest(name=f"runs/{job_id}")
            )
        ).run
        if "spec" not in run.config.fields:
            raise NotFound("training job", f"trainingJobs/{job_id}")
        return run

    def _ending(self, run: run_pb2.Run) -> LiveJob | None:
        """The job of a terminal `run` that may lack its final state change: still being stored,
        or stored after `run` was read (its last_sequence behind the job's)."""
        live = self.jobs.get(run.name.removeprefix("runs/"))
        if run.state not in TERMINAL or live is None or not live.ending:
            return None
        return live if live.storing_end or run.last_sequence < live.events.last_sequence else None

    async def _settle(self, ending: list[LiveJob]) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FINAL_EVENT_WAIT):
                await asyncio.gather(*(live.events.wait_closed() for live in ending))

    # Views.

    async def view(self, job_id: str) -> training_job_pb2.TrainingJob:
        """The job as callers see it (job_view); NotFound for a run that is not a job."""
        run = await self.get_run(job_id)
        return self._view(run, TrainSpec.from_json(json_format.MessageToDict(run.config)["spec"]))

    async def list_jobs(
        self, filters: JobFilter, page_size: int, page_token: str
    ) -> tuple[list[training_job_pb2.TrainingJob], str]:
        """A page of jobs, oldest first, filtered before paging (job_listing), and the next
        page's token ("" on the last page)."""
        page = await job_listing.list_jobs(self.registry, filters, page_size, page_token)
        ending = [live for run, _ in page.jobs if (live := self._ending(run))]
        if ending:  # as in get_run: list again once their final state changes are stored
            await self._settle(ending)
            page = await job_listing.list_jobs(self.registry, filters, page_size, page_token)
        return [self._view(run, spec) for run, spec in page.jobs], page.next_page_token

    def _view(self, run: run_pb2.Run, spec: TrainSpec) -> training_job_pb2.TrainingJob:
        live = self.jobs.get(spec.job_id)
        queued = live is not None and run.state == QUEUED
        position = self.scheduler.queue_position(spec.job_id) if queued else 0
        return training_job(spec, run, live, position)

    async def stream(
        self, job_id: str, from_sequence: int, history_only: bool
    ) -> AsyncIterator[run_pb2.RunEvent | FellBehind]:
        run = await self.get_run(job_id)
        live = self.jobs.get(job_id)
        if live is not None:
            # The hub replays the registry and its own unflushed window, then follows live.
            last = live.events.last_published
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
