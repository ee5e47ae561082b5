"""Run curves and their downsampling: a long run keeps its shape, spikes included, in at most
MAX_POINTS points per curve."""

from __future__ import annotations

import math

from tunix_rt.dashboard.series import (
    MAX_POINTS,
    Curve,
    chart_payload,
    curves_from_events,
    downsample,
)
from tunix_rt.v1 import run_pb2


def _loss(count: int, spike_at: int) -> Curve:
    curve = Curve()
    for step in range(1, count + 1):
        curve.append(float(step), 10.0 if step == spike_at else 4.0 * math.exp(-step / 9000))
    return curve


def test_fifty_thousand_points_keep_their_extremes_and_order() -> None:
    curve = _loss(50_000, spike_at=31_337)
    sampled = downsample(curve)
    assert len(sampled.steps) <= MAX_POINTS
    assert sampled.steps == sorted(sampled.steps)
    assert sampled.steps[0] == 1 and sampled.steps[-1] == 50_000
    assert max(sampled.values) == 10.0  # the spike survives
    assert 31_337.0 in sampled.steps
    assert min(sampled.values) == min(curve.values)


def test_a_short_curve_comes_back_whole() -> None:
    curve = _loss(300, spike_at=7)
    assert downsample(curve) == curve


def test_curves_come_from_metric_events_only() -> None:
    events = [
        run_pb2.RunEvent(
            sequence=1, state_change=run_pb2.StateChange(to_state=run_pb2.RUN_STATE_RUNNING)
        ),
        run_pb2.RunEvent(
            sequence=2,
            step=1,
            metrics=run_pb2.MetricValues(values={"loss": 5.0, "learning_rate": 1e-3, "x": 1}),
        ),
        run_pb2.RunEvent(sequence=3, step=2, metrics=run_pb2.MetricValues(values={"loss": 4.0})),
    ]
    curves, last = curves_from_events(events)
    assert last == 3
    assert curves["loss"] == Curve([1.0, 2.0], [5.0, 4.0])
    assert set(curves) == {"loss", "learning_rate"}  # metrics no chart draws are left out
    charts = chart_payload(curves)["charts"]
    assert isinstance(charts, list)
    loss = next(c for c in charts if c["title"] == "Loss")
    assert loss["x_label"] and loss["y_label"]
    assert [s["label"] for s in loss["series"]] == ["loss"]
