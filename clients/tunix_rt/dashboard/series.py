"""Metric curves of a run, and their downsampling for the browser.

A curve is (steps, values) of one metric. A run page draws at most `MAX_POINTS` points per curve:
a run with 50,000 metric events keeps its shape because each bucket of consecutive points keeps
its first, minimum, maximum and last point (the M4 aggregation of Jugel et al., VLDB 2014), so
a loss spike survives where plain striding would drop it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tunix_rt.v1 import run_pb2

# Points per curve sent to the browser: a few per horizontal pixel of a wide chart.
MAX_POINTS = 2000

# The metrics a run page draws, chart by chart: (title, y-axis label with unit, metric names).
RUN_CHARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Loss", "cross-entropy (nats/token)", ("loss", "eval_loss")),
    ("Learning rate", "learning rate (per step)", ("learning_rate",)),
    ("Eval answer accuracy", "accuracy (fraction correct)", ("eval_answer_accuracy",)),
    ("Throughput", "tokens per second", ("tokens_per_second",)),
    ("Model FLOPs utilisation", "MFU (fraction of peak FLOP/s)", ("mfu",)),
)
# Charts whose y axis is a fraction are drawn from 0 to 1 whatever the points.
FRACTION_CHARTS = frozenset({"Eval answer accuracy", "Model FLOPs utilisation"})
CHART_METRICS = frozenset(name for _, _, metrics in RUN_CHARTS for name in metrics)


@dataclass
class Curve:
    """One metric's points in step order."""

    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def append(self, step: float, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)


def curves_from_events(
    events: Iterable[run_pb2.RunEvent], metrics: frozenset[str] = CHART_METRICS
) -> tuple[dict[str, Curve], int]:
    """The curves of `metrics` in `events`, and the last sequence seen (0 for none)."""
    curves: dict[str, Curve] = {}
    last = 0
    for event in events:
        last = max(last, event.sequence)
        if not event.HasField("metrics"):
            continue
        for name, value in event.metrics.values.items():
            if name in metrics:
                curves.setdefault(name, Curve()).append(float(event.step), value)
    return curves, last


def downsample(curve: Curve, max_points: int = MAX_POINTS) -> Curve:
    """At most about `max_points` points of `curve` with its extremes kept (M4: first, min, max
    and last of each of max_points / 4 buckets), in step order; short curves come back whole."""
    count = len(curve.steps)
    if count <= max_points:
        return Curve(list(curve.steps), list(curve.values))
    buckets = max(1, max_points // 4)
    out = Curve()
    for bucket in range(buckets):
        start = bucket * count // buckets
        end = (bucket + 1) * count // buckets
        if start >= end:
            continue
        values = curve.values[start:end]
        low = start + min(range(len(values)), key=values.__getitem__)
        high = start + max(range(len(values)), key=values.__getitem__)
        for index in sorted({start, low, high, end - 1}):
            out.append(curve.steps[index], curve.values[index])
    return out


def chart_payload(curves: dict[str, Curve], max_points: int = MAX_POINTS) -> dict[str, object]:
    """The run page's charts as JSON for charts.js: per chart its title, axis labels and the
    downsampled series of the metrics it draws that the run has."""
    charts = []
    for title, y_label, names in RUN_CHARTS:
        series = [
            {"label": name, "x": sampled.steps, "y": sampled.values}
            for name in names
            if name in curves
            for sampled in (downsample(curves[name], max_points),)
        ]
        charts.append(
            {
                "title": title,
                "x_label": "step (optimizer steps)",
                "y_label": y_label,
                "metrics": list(names),
                "series": series,
                "y_range": [0, 1] if title in FRACTION_CHARTS else None,
            }
        )
    return {"charts": charts}
