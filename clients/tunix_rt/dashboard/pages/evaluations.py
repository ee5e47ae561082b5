"""The evaluations list, an evaluation's page (overall metrics, the per-category and
per-difficulty breakdown, the regression gate's verdict, per-item results with the model's
output) and the leaderboard of a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunix_rt.dashboard.connections import Problems
from tunix_rt.dashboard.pages.common import connections, limit
from tunix_rt.dashboard.rendering import render

# Items an evaluation's page shows; the CLI (`evaluations get`) reads the rest.
ITEMS_SHOWN = 200
# Leaderboard entries whose evaluations are read for their per-category breakdown.
BREAKDOWN_ENTRIES = 20
DEFAULT_METRIC = "answer_accuracy"


@dataclass(frozen=True)
class Breakdown:
    """Metrics by group: rows (key, label) such as ("category", "arithmetic"), one column per
    metric; from the evaluation metrics named `{metric}/{key}={label}`."""

    columns: list[str]
    rows: dict[tuple[str, str], dict[str, float]]


def split_metrics(metrics: dict[str, float]) -> tuple[dict[str, float], Breakdown]:
    overall = {k: v for k, v in metrics.items() if "/" not in k}
    rows: dict[tuple[str, str], dict[str, float]] = {}
    columns: list[str] = []
    for name, value in sorted(metrics.items()):
        if "/" not in name:
            continue
        metric, _, group = name.partition("/")
        key, _, label = group.partition("=")
        rows.setdefault((key, label), {})[metric] = value
        if metric not in columns:
            columns.append(metric)
    return overall, Breakdown(columns, dict(sorted(rows.items())))


def evaluations_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    shown = limit(request)
    evaluations = service.items(
        "registry", lambda: service.registry.list_evaluations(limit=shown), problems
    )
    datasets = sorted({e.dataset for e in evaluations})
    return render(request, "evaluations.html", problems, evaluations=evaluations, datasets=datasets)


def evaluation_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    evaluation_id = request.path_params["evaluation_id"]
    evaluation = service.get(
        "registry", lambda: service.registry.get_evaluation(evaluation_id), problems
    )
    items = service.items(
        "registry",
        lambda: service.registry.list_evaluation_items(evaluation_id, limit=ITEMS_SHOWN),
        problems,
    )
    overall, breakdown = split_metrics(dict(evaluation.metrics) if evaluation else {})
    return render(
        request,
        "evaluation.html",
        problems,
        evaluation=evaluation,
        evaluation_id=evaluation_id,
        overall=overall,
        breakdown=breakdown,
        items=items,
    )


def leaderboard_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    dataset = request.query_params.get("dataset", "").strip()
    metric = request.query_params.get("metric", DEFAULT_METRIC).strip() or DEFAULT_METRIC
    lower = request.query_params.get("lower") == "1"
    datasets = service.items(
        "registry", lambda: service.registry.list_datasets(limit=200), problems
    )
    entries = []
    if dataset:
        entries = service.items(
            "registry",
            lambda: service.registry.leaderboard(dataset, metric, lower_is_better=lower, limit=100),
            problems,
        )
    breakdowns = {}
    for entry in entries[:BREAKDOWN_ENTRIES]:
        evaluation = service.get(
            "registry",
            partial(service.registry.get_evaluation, entry.evaluation),
            problems,
        )
        if evaluation is not None:
            breakdowns[entry.evaluation] = (evaluation, split_metrics(dict(evaluation.metrics)))
    return render(
        request,
        "leaderboard.html",
        problems,
        dataset=dataset,
        metric=metric,
        lower=lower,
        datasets=datasets,
        entries=entries,
        breakdowns=breakdowns,
    )


routes = [
    Route("/evaluations", evaluations_page),
    Route("/evaluations/{evaluation_id}", evaluation_page),
    Route("/leaderboard", leaderboard_page),
]
