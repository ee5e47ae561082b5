"""What this training service knows about a job it runs, beyond the job's registry run: the
current attempt's phase, progress and latest metrics, its worker process, how it is ending, and
its event hub. The registry run stays the durable state (jobs.py); this is what is lost, and not
needed, when the service restarts.

A worker's reports (worker_protocol) land here: `apply` updates the state and emits the job's
events in order; the one report that needs the registry, a saved checkpoint, is the job
manager's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import timestamp_pb2

from tunix_rt.training.event_hub import JobEvents
from tunix_rt.training.executors.base import Attempt
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import run_pb2

log = logging.getLogger(__name__)


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


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
    # name -> (step, value, wall time in seconds)
    latest_metrics: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    latest_checkpoint: str = ""
    registered_version: str = ""
    evaluation: str = ""  # the completion evaluation's name
    evaluation_error: tuple[str, str] | None = None  # (gRPC code name, message)
    failure: tuple[str, str, dict[str, str]] | None = None  # (reason, message, metadata)
    cancel_reason: str | None = None
    # The state a cancelled job ends in: CANCELLED, or PRUNED for a trial its sweep stopped.
    end_state: int = run_pb2.RUN_STATE_CANCELLED
    # True from just before the registry is asked to make the job terminal (False again if that
    # fails): a caller that sees the terminal state then waits until the job's final events are
    # stored (jobs.py).
    ending: bool = False
    process: Attempt | None = None  # its workers (training.executors)
    requeued: bool = False  # its attempt lost a node: it queues again once its events are stored
    started: float = 0.0  # monotonic time training started, for the ETA
    first_step: int = 0

    # Events.

    def emit_state(self, before: int, after: int, reason: str) -> None:
        self.events.emit(self._state_event(before, after, reason))

    async def prepare_end(self) -> None:
        """Called just before the registry is asked to make the job terminal: marks it ending
        and stores what was emitted so far, so the run is never terminal with events missing
        but the final state change (`emit_final_state`)."""
        self.ending = True
        try:
            await self.events.flush()
        except Exception:  # the end is recorded all the same; closing the stream retries
            log.warning("could not store the events of job %s", self.job_id, exc_info=True)

    @property
    def storing_end(self) -> bool:
        """Whether the job's final state change may still be on its way to the registry."""
        return self.ending and not self.events.closed

    async def emit_final_state(self, before: int, after: int, reason: str) -> None:
        """Ends the job's stream with its terminal state change, which readers get only once the
        registry has stored it and every event before it (JobEvents.close)."""
        await self.events.close(self._state_event(before, after, reason))

    def _state_event(self, before: int, after: int, reason: str) -> run_pb2.RunEvent:
        return run_pb2.RunEvent(
            time=now(),
            step=self.step,
            state_change=run_pb2.StateChange(
                from_state=before,  # type: ignore[arg-type]
                to_state=after,  # type: ignore[arg-type]
                reason=reason,
            ),
        )

    def emit_log(self, message: str, level: str = "INFO") -> None:
        self.events.emit(
            run_pb2.RunEvent(
                time=now(), step=self.step, log=run_pb2.LogLine(level=level, message=message)
            )
        )

    def emit_checkpoint(self, step: int, checkpoint: str) -> None:
        self.latest_checkpoint = checkpoint
        self.events.emit(
            run_pb2.RunEvent(
                time=now(),
                step=step,
                checkpoint_saved=run_pb2.CheckpointSaved(checkpoint=checkpoint),
            )
        )

    # A worker's reports.

    def apply(self, event: dict[str, Any]) -> None:
        """Applies one worker report other than `checkpoint` (see worker_protocol)."""
        kind = event["event"]
        if kind == "metrics":
            step = int(event["step"])
            values = {k: float(v) for k, v in event["values"].items()}
            self.step = max(self.step, step)
            for name, value in values.items():
                self.latest_metrics[name] = (step, value, time.time())
            self.events.emit(
                run_pb2.RunEvent(time=now(), step=step, metrics=run_pb2.MetricValues(values=values))
            )
        elif kind == "progress":
            if not self.started:
                self.started, self.first_step = time.monotonic(), int(event["step"])
            self.step = int(event["step"])
            self.total_steps = int(event["total_steps"])
            self.epoch = float(event.get("epoch", 0.0))
        elif kind == "phase":
            if self.cancel_reason is None:  # STOPPING stays until the worker is gone
                self.phase = str(event["phase"])
        elif kind == "log":
            self.emit_log(str(event["message"]), str(event.get("level", "INFO")))
        elif kind == "registered":
            self.registered_version = str(event["model_version"])
            self.emit_log(f"registered {self.registered_version}")
        elif kind == "failed":
            metadata = {
                k: str(v) for k, v in event.items() if k not in ("event", "reason", "message")
            }
            self.failure = (str(event["reason"]), str(event["message"]), metadata)

    # How an attempt ended.

    def result(self) -> dict[str, Any]:
        """The attempt's outcome as the run's `config.result` (what a job view shows once this
        service no longer runs the job)."""
        result: dict[str, Any] = {
            "evaluation": self.evaluation,
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "latest_checkpoint": self.latest_checkpoint,
            "registered_model_version": self.registered_version,
            "latest_metrics": {k: [s, v] for k, (s, v, _t) in self.latest_metrics.items()},
        }
        if self.evaluation_error is not None:
            result["evaluation_error"] = {
                "code": self.evaluation_error[0],
                "message": self.evaluation_error[1],
            }
        return result
