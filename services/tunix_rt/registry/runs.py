"""Runs: the durable record of a training job and its legal state transitions, as plain Python."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunix_rt.common.errors import FailedPrecondition


class RunState(enum.IntEnum):
    """Mirrors tunix_rt.v1.RunState (same numbers)."""

    UNSPECIFIED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    PRUNED = 6


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.PRUNED})

# RUNNING -> QUEUED requeues a run whose training service restarted; FAILED/CANCELLED -> QUEUED
# is a resume from the latest checkpoint. SUCCEEDED is final: its model version is registered.
# PRUNED (a sweep trial its pruner stopped) is final too: the sweep's search already counted it.
LEGAL_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.RUNNING, RunState.CANCELLED, RunState.PRUNED}),
    RunState.RUNNING: frozenset(
        {
            RunState.SUCCEEDED,
            RunState.FAILED,
            RunState.CANCELLED,
            RunState.PRUNED,
            RunState.QUEUED,
        }
    ),
    RunState.FAILED: frozenset({RunState.QUEUED}),
    RunState.CANCELLED: frozenset({RunState.QUEUED}),
    RunState.SUCCEEDED: frozenset(),
    RunState.PRUNED: frozenset(),
}

MAX_EVENTS_PER_APPEND = 10_000


def check_transition(current: RunState, target: RunState, expected: RunState | None) -> None:
    """Raises FailedPrecondition unless `current -> target` is legal (and current == expected)."""
    if expected is not None and expected != RunState.UNSPECIFIED and current != expected:
        raise FailedPrecondition(
            f"run is {current.name}, not the expected {expected.name}",
            reason="RUN_STATE_MISMATCH",
            metadata={"state": current.name, "expected": expected.name},
        )
    if target not in LEGAL_TRANSITIONS[current]:
        allowed = ", ".join(s.name for s in sorted(LEGAL_TRANSITIONS[current])) or "none"
        raise FailedPrecondition(
            f"illegal run transition {current.name} -> {target.name} (allowed: {allowed})",
            reason="ILLEGAL_RUN_TRANSITION",
            metadata={"from": current.name, "to": target.name},
        )


@dataclass(frozen=True)
class Run:
    """A stored run."""

    run_id: str
    display_name: str
    dataset: str
    config: dict[str, Any]
    state: RunState
    devices: dict[str, Any] | None
    owner: str
    priority: int
    error: dict[str, Any] | None
    labels: dict[str, str]
    last_sequence: int
    create_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    update_time: datetime


@dataclass(frozen=True)
class RunEvent:
    """One event of a run's history; `kind` names which payload it carries."""

    sequence: int
    time: datetime
    step: int
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Checkpoint:
    """A recorded checkpoint."""

    run_id: str
    step: int
    uri: str
    metrics: dict[str, float]
    create_time: datetime
