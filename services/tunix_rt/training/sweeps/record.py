"""A sweep's durable history and the trial records folded from it.

A sweep's run stores three kinds of events: its own state changes (`state_change`), log lines
(`log`), and trial changes, stored as log lines of level TRIAL whose message is the change as
JSON (the registry's event model has no sweep payload, and needs none: these are only ever read
back here):

    {"change": "created",  "number": n, "params": {...}}
    {"change": "reported", "number": n, "step": s, "value": v}
    {"change": "ended",    "number": n, "state": "PRUNED", "value": v | null, "reason": "...",
                           "model_version": "..."}

Folding them in sequence order gives every trial's record, which is all a restarted service needs
to rebuild the search (search.py) and to go on where the sweep was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import timestamp_pb2

from tunix_rt.training.sweeps.spec import params_struct
from tunix_rt.v1 import run_pb2, sweep_pb2

TRIAL_LEVEL = "TRIAL"
_KINDS = {
    "created": sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_CREATED,
    "reported": sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_REPORTED,
    "ended": sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_ENDED,
}


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


@dataclass
class TrialRecord:
    """One trial as the sweep's history records it; `state` is QUEUED until it ended (the job's
    own state says more while it runs)."""

    number: int
    params: dict[str, Any]
    job_id: str
    state: int = run_pb2.RUN_STATE_QUEUED
    reports: dict[int, float] = field(default_factory=dict)  # step -> objective value
    value: float | None = None  # the final objective of a trial that ended
    reason: str = ""
    model_version: str = ""
    create_time: timestamp_pb2.Timestamp | None = None
    end_time: timestamp_pb2.Timestamp | None = None

    @property
    def ended(self) -> bool:
        return self.state != run_pb2.RUN_STATE_QUEUED

    @property
    def last_value(self) -> float | None:
        if self.value is not None:
            return self.value
        return self.reports[max(self.reports)] if self.reports else None


def trial_event(change: dict[str, Any]) -> run_pb2.RunEvent:
    """A trial change as the sweep run stores it."""
    return run_pb2.RunEvent(
        time=now(),
        log=run_pb2.LogLine(level=TRIAL_LEVEL, message=json.dumps(change, sort_keys=True)),
    )


def log_event(message: str) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(time=now(), log=run_pb2.LogLine(level="INFO", message=message))


def state_event(before: int, after: int, reason: str) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(
        time=now(),
        state_change=run_pb2.StateChange(
            from_state=before,  # type: ignore[arg-type]
            to_state=after,  # type: ignore[arg-type]
            reason=reason,
        ),
    )


def change_of(event: run_pb2.RunEvent) -> dict[str, Any] | None:
    """The trial change an event records; None for any other event."""
    if event.WhichOneof("payload") != "log" or event.log.level != TRIAL_LEVEL:
        return None
    change: dict[str, Any] = json.loads(event.log.message)
    return change


class Trials:
    """Trial records folded from a sweep's events, in sequence order."""

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id
        self.by_number: dict[int, TrialRecord] = {}

    def apply(self, event: run_pb2.RunEvent) -> TrialRecord | None:
        """Folds one event in; the trial it changed, if any."""
        change = change_of(event)
        if change is None:
            return None
        number = int(change["number"])
        if change["change"] == "created":
            trial = TrialRecord(number, dict(change["params"]), f"{self.sweep_id}-trial-{number}")
            trial.create_time = event.time
            self.by_number[number] = trial
            return trial
        trial = self.by_number[number]
        if change["change"] == "reported":
            trial.reports[int(change["step"])] = float(change["value"])
        elif change["change"] == "ended":
            trial.state = run_pb2.RunState.Value(f"RUN_STATE_{change['state']}")
            value = change.get("value")
            trial.value = None if value is None else float(value)
            trial.reason = str(change.get("reason", ""))
            trial.model_version = str(change.get("model_version", ""))
            trial.end_time = event.time
        return trial

    def extend(self, events: Iterable[run_pb2.RunEvent]) -> None:
        for event in events:
            self.apply(event)

    @property
    def ordered(self) -> list[TrialRecord]:
        return [self.by_number[n] for n in sorted(self.by_number)]

    @property
    def next_number(self) -> int:
        return max(self.by_number, default=-1) + 1

    def best(self, maximize: bool) -> TrialRecord | None:
        """The best final objective among succeeded trials (the earliest among equals)."""
        done = [
            t
            for t in self.ordered
            if t.state == run_pb2.RUN_STATE_SUCCEEDED and t.value is not None
        ]
        if not done:
            return None
        sign = -1.0 if maximize else 1.0
        return min(done, key=lambda t: (sign * (t.value or 0.0), t.number))


def trial_proto(trial: TrialRecord, live_state: int = 0) -> sweep_pb2.SweepTrial:
    """The trial as callers see it; `live_state` is its job's state while it has not ended."""
    message = sweep_pb2.SweepTrial(
        number=trial.number,
        training_job=f"trainingJobs/{trial.job_id}",
        params=params_struct(trial.params),
        state=trial.state if trial.ended else (live_state or trial.state),  # type: ignore[arg-type]
        intermediate_value_count=len(trial.reports),
        last_step=max(trial.reports, default=0),
        reason=trial.reason,
        model_version=trial.model_version,
    )
    if trial.last_value is not None:
        message.objective_value = trial.last_value
    if trial.create_time is not None:
        message.create_time.CopyFrom(trial.create_time)
    if trial.end_time is not None:
        message.end_time.CopyFrom(trial.end_time)
    return message


def sweep_event(event: run_pb2.RunEvent, trials: Trials) -> sweep_pb2.SweepEvent:
    """A stored event as StreamSweep sends it, folding it into `trials` (the stream's own fold
    from the first event, so each trial change carries the trial after it)."""
    message = sweep_pb2.SweepEvent(sequence=event.sequence, time=event.time)
    change = change_of(event)
    if change is not None:
        trial = trials.apply(event)
        assert trial is not None
        message.trial_change.kind = _KINDS[change["change"]]
        message.trial_change.trial.CopyFrom(trial_proto(trial))
        if change["change"] == "reported":
            message.trial_change.step = int(change["step"])
            message.trial_change.value = float(change["value"])
    elif event.WhichOneof("payload") == "state_change":
        message.state_change.CopyFrom(event.state_change)
    elif event.WhichOneof("payload") == "log":
        message.log.CopyFrom(event.log)
    return message
