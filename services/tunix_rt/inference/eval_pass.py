"""One evaluation pass over the items of a source, and the progress Evaluate streams.

A pass predicts every item (`prediction.predict_all`), streams an EvaluationProgress with the
running metrics and the estimated time remaining at most every `PROGRESS_INTERVAL_S` (and, when
asked, each scored item), and returns what the pass measured. Evaluate makes one pass for the
candidate and, when its regression gate has nothing recorded to compare with, one for the
baseline first.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from tunix_rt.inference import eval_items, eval_metrics, prediction
from tunix_rt.inference.engines.base import Sampling
from tunix_rt.inference.generation import duration
from tunix_rt.v1 import inference_pb2, inference_service_pb2

# Progress messages at most this often (seconds).
PROGRESS_INTERVAL_S = 0.25


@dataclass
class Pass:
    """What one evaluation pass produced."""

    model_version: str
    metrics: dict[str, float]
    outcomes: list[prediction.Outcome]  # in item order
    elapsed_s: float


class CallerGone(Exception):
    """The caller went away during a pass: stop without recording anything."""


def progress(
    done: int,
    total: int,
    metrics: dict[str, float],
    elapsed: float,
    phase: int,
) -> inference_service_pb2.EvaluateResponse:
    """A progress message; the time remaining is extrapolated from the items done so far."""
    message = inference_pb2.EvaluationProgress(
        completed_count=done,
        total_count=total,
        metrics=metrics,
        elapsed=duration(elapsed),
        phase=phase,  # type: ignore[arg-type]
    )
    if 0 < done < total:
        message.estimated_time_remaining.CopyFrom(duration(elapsed / done * (total - done)))
    elif done == total:
        message.estimated_time_remaining.CopyFrom(duration(0.0))
    return inference_service_pb2.EvaluateResponse(progress=message)


def run(
    served: Any,
    items: Sequence[eval_items.Item],
    sampling: Sampling,
    metrics: Sequence[str],
    cancelled: prediction.Cancelled,
    phase: int,
    include_items: bool,
) -> Generator[inference_service_pb2.EvaluateResponse, None, Pass]:
    """One pass over the items, streaming progress (and items); returns the pass's result.
    Raises CallerGone once `cancelled()` is true."""
    started = time.monotonic()
    outcomes: list[prediction.Outcome] = []
    yield progress(0, len(items), {}, 0.0, phase)
    last = time.monotonic()
    for outcome in prediction.predict_all(served, items, sampling, metrics, cancelled):
        outcomes.append(outcome)
        if include_items:
            yield inference_service_pb2.EvaluateResponse(item=outcome.prediction.item)
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL_S or len(outcomes) == len(items):
            last = now
            running = eval_metrics.aggregate((o.scored for o in outcomes), metrics, now - started)
            yield progress(len(outcomes), len(items), running, now - started, phase)
    if cancelled():
        raise CallerGone()
    elapsed = time.monotonic() - started
    outcomes.sort(key=lambda o: o.item.index)
    final = eval_metrics.final((o.scored for o in outcomes), metrics, elapsed)
    return Pass(served.model_version, final, outcomes, elapsed)
