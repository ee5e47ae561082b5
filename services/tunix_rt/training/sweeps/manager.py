"""The sweeps of one training service: create (validate, record, start), view, list, cancel,
stream, and recover after a restart, over the service's JobManager and its registry link.

A sweep is the registry run `runs/{sweep}` whose config is {"kind": "sweep", "sweep": SweepSpec
JSON}; the job manager skips such runs (they hold no job spec) and the sweep's trials are its
ordinary jobs. While a sweep runs here, its SweepController owns its event stream.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format, struct_pb2

from tunix_rt.common import pagination
from tunix_rt.common.errors import FailedPrecondition, InvalidArgument, NotFound
from tunix_rt.training import job_spec
from tunix_rt.training.event_hub import FellBehind, JobEvents
from tunix_rt.training.jobs import TERMINAL, JobManager
from tunix_rt.training.sweeps import record, spec, view
from tunix_rt.training.sweeps.controller import SweepController
from tunix_rt.training.sweeps.record import Trials
from tunix_rt.training.sweeps.spec import SweepSpec
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2, sweep_pb2

QUEUED, RUNNING = run_pb2.RUN_STATE_QUEUED, run_pb2.RUN_STATE_RUNNING
KIND = "sweep"
ALL = 1 << 62  # the last sequence of a whole history


class SweepManager:
    """Creates and drives this service's sweeps; driven from the event loop only."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs
        self.registry = jobs.registry
        self.controllers: dict[str, SweepController] = {}

    # Lifecycle of the service.

    async def recover(self) -> None:
        """Continues this service's sweeps that had not ended (after the job manager recovered
        their trials' jobs)."""
        for run in await self.registry.runs([QUEUED, RUNNING], self.jobs.owner):
            config = json_format.MessageToDict(run.config)
            if config.get("kind") != KIND:
                continue
            sweep_spec = SweepSpec.from_json(config["sweep"])
            trials = Trials(sweep_spec.sweep_id)
            trials.extend([e async for e in self.registry.history(run.name, 1, ALL)])
            await self._start(sweep_spec, trials, run, "the training service restarted")

    async def close(self) -> None:
        for controller in self.controllers.values():
            await controller.close()

    # Commands.

    async def create(
        self, sweep: sweep_pb2.Sweep, sweep_id: str, request_id: str, validate_only: bool
    ) -> sweep_pb2.Sweep:
        sweep_id = sweep_id or f"sweep-{uuid.uuid4().hex[:10]}"
        if not spec.ID.match(sweep_id):
            raise InvalidArgument.field(
                "sweep_id", "must be 1-100 letters, digits, '-', '_' or '.'"
            )
        sweep_spec = spec.spec_from_sweep(sweep, sweep_id)
        await self._check(sweep_spec)
        if validate_only:
            return view.sweep_proto(sweep_spec, None, Trials(sweep_id), {})
        config = struct_pb2.Struct()
        config.update({"kind": KIND, "sweep": sweep_spec.to_json()})
        run = (
            await self.registry.call(
                f"runs/{sweep_id}",
                "CreateRun",
                rpb.CreateRunRequest(
                    run=run_pb2.Run(
                        display_name=sweep_spec.display_name,
                        dataset=sweep_spec.dataset,
                        config=config,
                        owner=self.jobs.owner,
                        labels={"kind": KIND},
                    ),
                    run_id=sweep_id,
                    request_id=request_id,
                ),
            )
        ).run
        # A repeated request (same request_id) gets the sweep that exists already.
        if sweep_id not in self.controllers and run.state == QUEUED and not run.last_sequence:
            await self._start(sweep_spec, Trials(sweep_id), run, "created")
        return await self.view(sweep_id)

    async def _check(self, sweep_spec: SweepSpec) -> None:
        """What the sweep needs beyond its own fields: trials that pass the job validation (at
        both ends of every range), an inference service to evaluate the best with, if asked,
        and room on this host for `parallel` trials at once."""
        low = {p.name: _end(p, 0) for p in sweep_spec.parameters}
        high = {p.name: _end(p, -1) for p in sweep_spec.parameters}
        for params in (low, high):
            job = spec.trial_job(sweep_spec, 0, params)
            try:
                await self.jobs.create(job, sweep_spec.trial_id(0), "", True)
            except InvalidArgument as exc:
                violations = [
                    type(v)(
                        v.field.replace("training_job.", "sweep.base_training_job.", 1),
                        f"{v.description} (for a trial with {params})",
                    )
                    for v in exc.violations
                ]
                raise InvalidArgument.fields(violations) from None
        settings = sweep_spec.base_job.get("completion_evaluation", {})
        if sweep_spec.evaluate_best and not (
            settings.get("inference_address") or self.jobs.inference_address
        ):
            raise FailedPrecondition(
                "evaluating the best trial needs an inference service: start the training "
                "service with --inference ADDR, or set the base job's "
                "completion_evaluation.inference_address",
                reason="INFERENCE_UNAVAILABLE",
            )
        request = job_spec.device_request_of(sweep_spec.base_message())
        kind = self.jobs.scheduler.check_fits_host(request)
        have = self.jobs.scheduler.by_kind().get(kind, 0)
        need = request.count * sweep_spec.parallel
        if need > have or (request.ids and sweep_spec.parallel > 1):
            raise FailedPrecondition(
                f"{sweep_spec.parallel} parallel trials of {request.count} {kind} device(s) "
                f"each need {need} {kind} devices at once; this host has {have}",
                reason="PARALLEL_EXCEEDS_HOST",
                metadata={"requested": f"{kind}:{need}", "host": f"{kind}:{have}"},
            )

    async def _start(
        self, sweep_spec: SweepSpec, trials: Trials, run: run_pb2.Run, reason: str
    ) -> None:
        name = run.name
        events = JobEvents(
            run.last_sequence,
            sink=lambda batch: self.registry.append_events(name, batch),
            history=lambda first, last: self.registry.history(name, first, last),
            flush_interval=self.jobs.event_flush_interval,
        )
        if run.state == QUEUED:
            await self.registry.transition(name, RUNNING, QUEUED, reason, self.jobs.owner)
            events.emit(record.state_event(QUEUED, RUNNING, reason))
        controller = SweepController(sweep_spec, self.jobs, events, trials)
        self.controllers[sweep_spec.sweep_id] = controller
        controller.start()

    async def cancel(self, sweep_id: str, reason: str) -> None:
        reason = reason or "cancelled by a caller"
        if len(reason) > 1024:
            raise InvalidArgument.field("reason", "must be at most 1024 chars")
        run, _ = await self._read(sweep_id)
        if run.state == run_pb2.RUN_STATE_CANCELLED:
            return
        controller = self.controllers.get(sweep_id)
        if run.state in TERMINAL or controller is None or controller.events.closed:
            raise FailedPrecondition(
                f"sweep is {run_pb2.RunState.Name(run.state)} and not running on this service",
                reason="SWEEP_NOT_RUNNING",
            )
        await controller.cancel(reason)

    # Views.

    async def _read(self, sweep_id: str) -> tuple[run_pb2.Run, SweepSpec]:
        name = f"sweeps/{sweep_id}"
        run: run_pb2.Run = (
            await self.registry.call(name, "GetRun", rpb.GetRunRequest(name=f"runs/{sweep_id}"))
        ).run
        config = json_format.MessageToDict(run.config)
        if config.get("kind") != KIND:
            raise NotFound("sweep", name)
        return run, SweepSpec.from_json(config["sweep"])

    async def view(self, sweep_id: str) -> sweep_pb2.Sweep:
        run, sweep_spec = await self._read(sweep_id)
        controller = self.controllers.get(sweep_id)
        if controller is not None and not controller.events.closed:
            trials = controller.trials
        else:
            if controller is not None:  # just ended: its final events are being stored
                await controller.events.wait_closed()
                run, sweep_spec = await self._read(sweep_id)
            trials = Trials(sweep_id)
            trials.extend([e async for e in self.registry.history(run.name, 1, ALL)])
        live_states: dict[int, int] = {}
        for trial in trials.ordered:
            if not trial.ended:
                with contextlib.suppress(NotFound):
                    live_states[trial.number] = (await self.jobs.get_run(trial.job_id)).state
        return view.sweep_proto(sweep_spec, run, trials, live_states)

    async def list_sweeps(
        self, states: list[int], page_size: int, page_token: str
    ) -> tuple[list[sweep_pb2.Sweep], str]:
        """A page of sweeps, oldest first. The registry is read in pages no larger than what the
        page still needs, so every sweep of a registry page fits and the registry's own token
        continues right after it."""
        size = pagination.page_size(page_size)
        key = ["sweeps", sorted(states)]
        position: str = pagination.decode(page_token, key) or ""
        found: list[str] = []
        while len(found) < size:
            response = await self.registry.call(
                "runs",
                "ListRuns",
                rpb.ListRunsRequest(
                    states=states,  # type: ignore[arg-type]
                    page_size=size - len(found),
                    page_token=position,
                ),
            )
            found.extend(
                r.name.removeprefix("runs/")
                for r in response.runs
                if json_format.MessageToDict(r.config).get("kind") == KIND
            )
            position = response.next_page_token
            if not position:
                break
        sweeps = [await self.view(sweep_id) for sweep_id in found]
        return sweeps, pagination.encode(position, key) if position else ""

    async def stream(
        self, sweep_id: str, from_sequence: int, history_only: bool
    ) -> AsyncIterator[sweep_pb2.SweepEvent]:
        """The sweep's events from `from_sequence`, each trial change with the trial after it
        (folded from the first event on)."""
        run, _ = await self._read(sweep_id)
        controller = self.controllers.get(sweep_id)
        trials = Trials(sweep_id)
        last = controller.events.last_published if controller is not None else run.last_sequence
        next_sequence = 1
        while True:
            source: AsyncIterator[Any] = (
                controller.events.stream(next_sequence)
                if controller is not None and not history_only
                else self.registry.history(run.name, next_sequence, ALL)
            )
            async for event in source:
                if isinstance(event, FellBehind):
                    break
                next_sequence = event.sequence + 1
                message = record.sweep_event(event, trials)
                if event.sequence >= from_sequence:
                    yield message
                if history_only and event.sequence >= last:
                    return
            else:
                return


def _end(parameter: spec.Parameter, which: int) -> Any:
    """The first (0) or last (-1) value of a parameter's domain."""
    if parameter.kind == "categorical":
        return parameter.choices[which]
    bound = parameter.low if which == 0 else parameter.high
    return int(bound) if parameter.kind == "int" else bound
