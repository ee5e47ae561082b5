"""The models page (each model with its aliases and latest version) and a model's page (its
versions, which alias points where, and each version's lineage: the run that trained it, the
dataset and its content hash from the provenance, and the evaluations of it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunix_rt.dashboard.connections import Problems
from tunix_rt.dashboard.pages.common import connections, limit
from tunix_rt.dashboard.rendering import render

# Versions and evaluations a model's page lists.
VERSIONS_SHOWN = 100
EVALUATIONS_SHOWN = 100


def models_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    shown = limit(request)
    models = service.items("registry", lambda: service.registry.list_models(limit=shown), problems)
    return render(request, "models.html", problems, models=models)


def model_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    model_id = request.path_params["model_id"]
    model = service.get("registry", lambda: service.registry.get_model(model_id), problems)
    versions = service.items(
        "registry",
        lambda: service.registry.list_model_versions(model_id, limit=VERSIONS_SHOWN),
        problems,
    )
    evaluations = service.items(
        "registry",
        lambda: service.registry.list_evaluations(model=model_id, limit=EVALUATIONS_SHOWN),
        problems,
    )
    by_version: dict[str, list[object]] = {}
    for evaluation in evaluations:
        by_version.setdefault(evaluation.model_version, []).append(evaluation)
    return render(
        request,
        "model.html",
        problems,
        model=model,
        model_id=model_id,
        versions=versions,
        evaluations=by_version,
    )


routes = [
    Route("/models", models_page),
    Route("/models/{model_id}", model_page),
]
