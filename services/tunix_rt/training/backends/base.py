"""What a training backend is given and returns; shared by the JAX and torch backends.

A backend runs inside a worker process, sees only the devices its job was allocated, and talks to
the outside world only through the Reporter (events for the job's metric stream) and its working
directory (checkpoints, the final model directory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunix_rt.common.rendering import render_prompt, render_target

# The phases a backend reports (Reporter.phase), in the order a run goes through them; the
# service shows them as TrainingJob.phase (TRAINING_JOB_PHASE_<name>).
PREPARING, TRAINING, EVALUATING, CHECKPOINTING, REGISTERING = (
    "PREPARING",
    "TRAINING",
    "EVALUATING",
    "CHECKPOINTING",
    "REGISTERING",
)


@dataclass(frozen=True)
class Example:
    """One rendered SFT example (tunix_rt.common.rendering): the loss counts `target` only."""

    trace: str  # traces/{trace}
    prompt: str  # chat-templated prompt text
    target: str  # "steps ... Answer: X"
    answer: str  # the trace's final answer, for eval answer accuracy

    @classmethod
    def of_row(cls, row: Mapping[str, Any], trace: str = "traces/t") -> Example:
        """A trace row as datasets/*.jsonl and tunix_rt.datagen write it (prompt, steps of
        {content}, final_answer), rendered as the registry renders a stored trace: for
        benchmarks and tests that train without a registry."""
        steps = [step["content"] for step in row["steps"]]
        return cls(
            trace,
            render_prompt(row["prompt"]),
            render_target(steps, row["final_answer"]),
            row["final_answer"],
        )


@dataclass(frozen=True)
class TrainData:
    """The dataset's splits, in dataset order."""

    train: list[Example]
    eval: list[Example]


class Reporter(Protocol):
    """How a backend reports to its job; every call is cheap and never blocks on readers."""

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Metric values at an optimizer step (loss, learning_rate, grad_norm, ...)."""

    def log(self, message: str, level: str = "INFO") -> None:
        """A log line for the job's event stream."""

    def phase(self, phase: str) -> None:
        """PREPARING | TRAINING | EVALUATING | CHECKPOINTING | REGISTERING."""

    def progress(self, step: int, total_steps: int, epoch: float) -> None:
        """The last completed step, the total and fractional epochs."""

    def checkpoint(self, step: int, path: str, metrics: dict[str, float]) -> None:
        """A checkpoint was saved at `path`."""

    def should_stop(self) -> bool:
        """True once the job was cancelled: save nothing more, return promptly."""


class SilentReporter:
    """A Reporter that drops everything and never stops (ranks other than 0; benchmarks
    subclass it to keep the metrics they measure)."""

    def metrics(self, step: int, values: dict[str, float]) -> None: ...
    def log(self, message: str, level: str = "INFO") -> None: ...
    def phase(self, phase: str) -> None: ...
    def progress(self, step: int, total_steps: int, epoch: float) -> None: ...
    def checkpoint(self, step: int, path: str, metrics: dict[str, float]) -> None: ...

    def should_stop(self) -> bool:
        return False


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the job fails with the step and the value."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"loss is {value} at step {step}")
        self.step = step
        self.value = value


class Stopped(Exception):
    """Training stopped because the job was cancelled."""


@dataclass
class TrainResult:
    """What a finished training leaves behind."""

    # A self-contained model directory: config.json, tokenizer.json, weights.
    model_dir: Path
    total_steps: int
    final_metrics: dict[str, float]
    # Library versions, device platform, parameter counts ...: goes into provenance.
    provenance: dict[str, Any] = field(default_factory=dict)
