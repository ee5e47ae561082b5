"""What the evaluation and sweep pages compute from the messages they read: the breakdown of an
evaluation's metrics by category and difficulty, and a sweep's objective with the best so far."""

from __future__ import annotations

from tunix_rt.dashboard.pages.data import objective_chart
from tunix_rt.dashboard.pages.evaluations import split_metrics
from tunix_rt.v1 import sweep_pb2


def test_breakdown_metrics_become_rows_by_group() -> None:
    overall, breakdown = split_metrics(
        {
            "answer_accuracy": 0.5,
            "answer_accuracy/category=arithmetic": 0.75,
            "exact_match/category=arithmetic": 0.5,
            "answer_accuracy/difficulty=hard": 0.25,
        }
    )
    assert overall == {"answer_accuracy": 0.5}
    assert breakdown.columns == ["answer_accuracy", "exact_match"]
    assert breakdown.rows == {
        ("category", "arithmetic"): {"answer_accuracy": 0.75, "exact_match": 0.5},
        ("difficulty", "hard"): {"answer_accuracy": 0.25},
    }


def test_the_objective_chart_tracks_the_best_trial_so_far() -> None:
    sweep = sweep_pb2.Sweep(
        objective=sweep_pb2.SweepObjective(
            metric="eval_loss", direction=sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE
        ),
        trials=[
            sweep_pb2.SweepTrial(number=2, objective_value=3.0),
            sweep_pb2.SweepTrial(number=0, objective_value=4.0),
            sweep_pb2.SweepTrial(number=1),  # still running: no objective yet
            sweep_pb2.SweepTrial(number=3, objective_value=3.5),
        ],
    )
    chart = objective_chart(sweep)
    series = chart["series"]
    assert isinstance(series, list)
    trial, best = series
    assert trial == {"label": "trial", "x": [0.0, 2.0, 3.0], "y": [4.0, 3.0, 3.5]}
    assert best["y"] == [4.0, 3.0, 3.0]
    assert "eval_loss" in str(chart["title"]) and "lower is better" in str(chart["y_label"])
    assert objective_chart(sweep_pb2.Sweep())["series"] == []
