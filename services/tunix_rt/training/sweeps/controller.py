"""One running sweep: an asyncio task that keeps at most `parallel` trial jobs unfinished, asks the
search for each new trial's parameters, submits it as an ordinary training job, watches its live
metric stream (reporting the objective at each evaluation, and pruning through the job manager's
cancel path, which frees the trial's devices at once), tells the search how it ended, and when
every trial has ended aliases (and optionally evaluates) the best trial's version and ends the
sweep.

Every trial change is recorded as an event of the sweep's run before it is acted on (a trial is
recorded before its job is submitted; the job's id and request id are derived from the trial
number), so a service that stops at any point continues without losing or repeating a trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from google.protobuf import json_format

from tunix_rt.common.errors import FailedPrecondition, NotFound, TunixError
from tunix_rt.training import completion_eval
from tunix_rt.training.event_hub import FellBehind, JobEvents
from tunix_rt.training.jobs import TERMINAL, JobManager
from tunix_rt.training.sweeps import record
from tunix_rt.training.sweeps.record import TrialRecord, Trials
from tunix_rt.training.sweeps.search import Search
from tunix_rt.training.sweeps.spec import SweepSpec, trial_job
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2

log = logging.getLogger(__name__)

RUNNING, SUCCEEDED = run_pb2.RUN_STATE_RUNNING, run_pb2.RUN_STATE_SUCCEEDED
FAILED, CANCELLED, PRUNED = (
    run_pb2.RUN_STATE_FAILED,
    run_pb2.RUN_STATE_CANCELLED,
    run_pb2.RUN_STATE_PRUNED,
)
RETRY_SECONDS = 1.0  # between attempts to follow a trial whose stream ended before its job did


class SweepController:
    """Drives one sweep of this service from its recorded trials to its end."""

    def __init__(
        self, spec: SweepSpec, jobs: JobManager, events: JobEvents, trials: Trials
    ) -> None:
        self.spec = spec
        self.jobs = jobs
        self.events = events
        self.trials = trials
        self.search = Search(spec, replayed=len(trials.by_number))
        self.search.rebuild(trials.ordered)
        self.cancel_reason: str | None = None
        self.task: asyncio.Task[None] | None = None
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._pruning: set[int] = set()

    @property
    def run_name(self) -> str:
        return f"runs/{self.spec.sweep_id}"

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def cancel(self, reason: str) -> None:
        """Stops starting trials and cancels the live ones; the sweep ends CANCELLED once they
        have stopped."""
        self.cancel_reason = reason
        for number in list(self._watchers):
            await self._stop_trial(number, reason, CANCELLED)

    async def close(self) -> None:
        """Stops driving the sweep (the service is shutting down); it continues on restart."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for watcher in self._watchers.values():
            watcher.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.events.close()

    # The sweep's loop.

    async def _run(self) -> None:
        try:
            for trial in self.trials.ordered:
                if not trial.ended:
                    await self._resubmit(trial)
                    self._watch(trial.number)
            while True:
                while (
                    self.cancel_reason is None
                    and len(self._watchers) < self.spec.parallel
                    and self.trials.next_number < self.spec.max_trials
                ):
                    await self._start_trial(self.trials.next_number)
                if not self._watchers:
                    break
                await asyncio.wait(self._watchers.values(), return_when=asyncio.FIRST_COMPLETED)
                for number, watcher in list(self._watchers.items()):
                    if watcher.done():
                        del self._watchers[number]
                        watcher.result()
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or the registry gone for good: end the sweep FAILED
            log.exception("sweep %s failed", self.spec.sweep_id)
            with contextlib.suppress(Exception):
                await self._end(FAILED, f"training service error: {exc}", {})

    async def _start_trial(self, number: int) -> None:
        params = self.search.ask(number)
        self._emit({"change": "created", "number": number, "params": params})
        # Stored before the job exists, so a restart finds the trial and submits it (once).
        await self.events.flush()
        if await self._submit(self.trials.by_number[number]):
            self._watch(number)
            if self.cancel_reason is not None:  # cancelled while it was being submitted
                await self._stop_trial(number, self.cancel_reason, CANCELLED)

    async def _resubmit(self, trial: TrialRecord) -> None:
        """A recorded trial whose job may not exist (the service stopped in between)."""
        try:
            await self.jobs.get_run(trial.job_id)
        except NotFound:
            await self._submit(trial)

    async def _submit(self, trial: TrialRecord) -> bool:
        job = trial_job(self.spec, trial.number, trial.params)
        try:
            await self.jobs.create(job, trial.job_id, f"sweep-{trial.job_id}", False)
        except TunixError as exc:  # e.g. a combination the job validation refuses
            self._end_trial(trial, FAILED, f"could not submit the trial: {exc}")
            return False
        return True

    def _watch(self, number: int) -> None:
        task = asyncio.get_running_loop().create_task(self._follow(number))
        self._watchers[number] = task

    # One trial.

    async def _follow(self, number: int) -> None:
        """Follows trial `number`'s job to its end, reporting each value of the objective."""
        trial = self.trials.by_number[number]
        next_sequence = 1
        while True:
            async for item in self.jobs.stream(trial.job_id, next_sequence, False):
                if isinstance(item, FellBehind):
                    break
                next_sequence = item.sequence + 1
                values = item.metrics.values if item.WhichOneof("payload") == "metrics" else {}
                if self.spec.metric in values and item.step not in trial.reports:
                    await self._report(trial, item.step, values[self.spec.metric])
            run = await self.jobs.get_run(trial.job_id)
            if run.state in TERMINAL:
                break
            await asyncio.sleep(RETRY_SECONDS)  # requeued meanwhile: follow it again
        result = json_format.MessageToDict(run.config).get("result", {})
        reason = run.error.message if run.state != SUCCEEDED else ""
        self._end_trial(trial, run.state, reason, result.get("registered_model_version", ""))

    async def _report(self, trial: TrialRecord, step: int, value: float) -> None:
        self._emit({"change": "reported", "number": trial.number, "step": step, "value": value})
        prune = self.search.report(trial.number, step, value)
        live = self.jobs.jobs.get(trial.job_id)
        last_step = self.spec.max_steps or (live.total_steps if live is not None else 0)
        if not prune or trial.number in self._pruning or (last_step and step >= last_step):
            return
        others = [
            t.reports[step]
            for t in self.trials.ordered
            if t.number != trial.number and step in t.reports
        ]
        best = (max if self.spec.maximize else min)(others) if others else None
        reason = (
            f"pruned by {self.spec.pruner.replace('_', ' ')} at step {step}: "
            f"{self.spec.metric} {value:.4g}"
            + (f", best of the other trials at this step {best:.4g}" if best is not None else "")
        )
        await self._stop_trial(trial.number, reason, PRUNED)

    async def _stop_trial(self, number: int, reason: str, end_state: int) -> None:
        trial = self.trials.by_number[number]
        if end_state == PRUNED:
            self._pruning.add(number)
        with contextlib.suppress(FailedPrecondition, NotFound):  # it ended meanwhile
            await self.jobs.cancel(trial.job_id, reason, end_state)

    def _end_trial(
        self, trial: TrialRecord, state: int, reason: str, model_version: str = ""
    ) -> None:
        value = trial.last_value if state == SUCCEEDED else None
        change: dict[str, Any] = {
            "change": "ended",
            "number": trial.number,
            "state": run_pb2.RunState.Name(state).removeprefix("RUN_STATE_"),
            "value": value,
            "reason": reason,
            "model_version": model_version,
        }
        self._emit(change)
        self.search.tell(trial.number, state, value)

    def _emit(self, change: dict[str, Any]) -> None:
        event = record.trial_event(change)
        self.events.emit(event)
        self.trials.apply(event)

    # The end.

    async def _finish(self) -> None:
        best = self.trials.best(self.spec.maximize)
        outcome: dict[str, Any] = {}
        if best is not None:
            outcome["best_trial"] = best.number
            if self.spec.register_best_as and best.model_version:
                outcome["best_model_version"] = await self._alias(best)
            if self.spec.evaluate_best and best.model_version:
                outcome["best_evaluation"] = await self._evaluate(best.model_version)
        if self.cancel_reason is not None:
            await self._end(CANCELLED, self.cancel_reason, outcome)
        elif best is None:
            await self._end(FAILED, "no trial succeeded with a value of the objective", outcome)
        else:
            value = f"{self.spec.metric} {best.value:.4g}" if best.value is not None else ""
            await self._end(SUCCEEDED, f"best trial {best.number}: {value}", outcome)

    async def _alias(self, best: TrialRecord) -> str:
        version = best.model_version
        model, _, number = version.partition("/versions/")
        await self.jobs.registry.call(
            model,
            "SetModelAlias",
            rpb.SetModelAliasRequest(model=model, alias=self.spec.best_alias, version=int(number)),
        )
        self.events.emit(record.log_event(f"{model}@{self.spec.best_alias} is now {version}"))
        return version

    async def _evaluate(self, version: str) -> str:
        settings = dict(self.spec.base_job.get("completion_evaluation", {}))
        address = str(settings.get("inference_address") or self.jobs.inference_address)
        if not address:
            self.events.emit(record.log_event("no inference service to evaluate the best with"))
            return ""
        request = completion_eval.request_of(
            settings, version, self.spec.dataset, f"{self.spec.sweep_id}-best"
        )

        def emit_log(message: str) -> None:
            self.events.emit(record.log_event(message))

        outcome = await completion_eval.evaluate(
            self.jobs.registry.settings.to(address), request, emit_log
        )
        return outcome.evaluation

    async def _end(self, state: int, reason: str, outcome: dict[str, Any]) -> None:
        await self.events.flush()
        await self.jobs.registry.transition(
            self.run_name, state, RUNNING, reason, self.jobs.owner, config_update=outcome
        )
        await self.events.close(record.state_event(RUNNING, state, reason))
