"""The datasets pages (stats and a few rendered training examples) and the sweeps pages
(trials, the best so far, and the objective over time)."""

from __future__ import annotations

import itertools

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunix_rt.dashboard.connections import Problems
from tunix_rt.dashboard.pages.common import connections, limit
from tunix_rt.dashboard.rendering import render
from tunix_rt.v1 import dataset_pb2, sweep_pb2

# Training examples a dataset's page renders, as the trainer sees them (EXPORT_FORMAT_SFT).
SAMPLES_SHOWN = 5


def datasets_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    shown = limit(request)
    datasets = service.items(
        "registry", lambda: service.registry.list_datasets(limit=shown), problems
    )
    return render(request, "datasets.html", problems, datasets=datasets)


def dataset_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    dataset_id = request.path_params["dataset_id"]
    dataset = service.get("registry", lambda: service.registry.get_dataset(dataset_id), problems)
    samples = service.items(
        "registry",
        lambda: itertools.islice(
            service.registry.export_dataset(dataset_id, format=dataset_pb2.EXPORT_FORMAT_SFT),
            SAMPLES_SHOWN,
        ),
        problems,
    )
    return render(
        request, "dataset.html", problems, dataset=dataset, dataset_id=dataset_id, samples=samples
    )


def sweeps_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    shown = limit(request)
    sweeps = service.items("training", lambda: service.training.list_sweeps(limit=shown), problems)
    return render(request, "sweeps.html", problems, sweeps=sweeps)


def objective_chart(sweep: sweep_pb2.Sweep) -> dict[str, object]:
    """The objective of each ended trial by trial number, and the best so far."""
    maximize = sweep.objective.direction == sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE
    trials = sorted(
        (t for t in sweep.trials if t.HasField("objective_value")), key=lambda t: t.number
    )
    best: list[float] = []
    for trial in trials:
        value = trial.objective_value
        best.append(value if not best else (max if maximize else min)(best[-1], value))
    numbers = [float(t.number) for t in trials]
    metric = sweep.objective.metric or "objective"
    return {
        "title": f"Objective ({metric}) by trial",
        "x_label": "trial number",
        "y_label": f"{metric} ({'higher' if maximize else 'lower'} is better)",
        "metrics": [],
        "series": [
            {"label": "trial", "x": numbers, "y": [t.objective_value for t in trials]},
            {"label": "best so far", "x": numbers, "y": best},
        ]
        if trials
        else [],
    }


def sweep_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    sweep_id = request.path_params["sweep_id"]
    sweep = service.get("training", lambda: service.training.get_sweep(sweep_id), problems)
    return render(
        request,
        "sweep.html",
        problems,
        sweep=sweep,
        sweep_id=sweep_id,
        chart=objective_chart(sweep) if sweep else None,
    )


routes = [
    Route("/datasets", datasets_page),
    Route("/datasets/{dataset_id}", dataset_page),
    Route("/sweeps", sweeps_page),
    Route("/sweeps/{sweep_id}", sweep_page),
]
