"""The runs list (filtered by state and dataset), a run's page (config, provenance, curves that
grow live over server-sent events) and the compare page (several runs' curves overlaid)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

from google.protobuf import json_format
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tunix_rt.client import names
from tunix_rt.dashboard.connections import Connections, PageNotFound, Problems
from tunix_rt.dashboard.live import TERMINAL, run_events
from tunix_rt.dashboard.pages.common import connections, limit, newest
from tunix_rt.dashboard.rendering import render
from tunix_rt.dashboard.series import Curve, chart_payload, curves_from_events
from tunix_rt.v1 import model_pb2, run_pb2
from tunix_rt.v1 import registry_service_pb2 as rpb

# Runs offered for comparison on the compare page, newest first.
COMPARE_CHOICES = 50
# Most runs one compare page overlays.
COMPARE_MAX = 8
# ListRunEvents' maximum page size (registry_service.proto).
EVENTS_PAGE = 10_000
# Runs per ListRuns call when a page reads them all to show the newest.
RUNS_PAGE = 1000


def _states(request: Request) -> list[run_pb2.RunState]:
    wanted = request.query_params.getlist("state")
    try:
        return [run_pb2.RunState.Value(f"RUN_STATE_{s.upper()}") for s in wanted if s]  # type: ignore[misc]
    except ValueError:
        raise HTTPException(400, f"unknown run state in {wanted}") from None


def runs_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    states = _states(request)
    dataset = request.query_params.get("dataset", "").strip()
    shown = limit(request)
    runs = service.items(
        "registry",
        lambda: newest(
            service.registry.list_runs(states=states, dataset=dataset or None, page_size=RUNS_PAGE),
            shown,
        ),
        problems,
    )
    return render(
        request,
        "runs.html",
        problems,
        runs=runs,
        states=[run_pb2.RunState.Name(s).removeprefix("RUN_STATE_").lower() for s in states],
        all_states=["queued", "running", "succeeded", "failed", "cancelled", "pruned"],
        dataset=dataset,
        limit=shown,
    )


def _provenance(
    service: Connections, run_id: str, problems: Problems
) -> model_pb2.ModelVersion | None:
    """The model version the run registered, through its job; None when it has none yet."""
    job = service.get("training", lambda: service.training.get_job(run_id), problems)
    if job is None or not job.registered_model_version:
        return None
    return service.get(
        "registry",
        lambda: service.registry.get_model_version(job.registered_model_version),
        problems,
    )


def run_page(request: Request) -> Response:
    """The run's facts, provenance and config; its charts arrive from `run_series` after the
    page has loaded (the registry takes seconds to read a 50,000-event history), then grow live
    from `run_events_stream`."""
    problems = Problems()
    service = connections(request)
    run_id = request.path_params["run_id"]
    run = service.get("registry", lambda: service.registry.get_run(run_id), problems)
    if run is None:
        return render(request, "run.html", problems, run=None, run_id=run_id)
    try:
        version = _provenance(service, run_id, problems)
    except PageNotFound:  # a run the training service no longer knows as a job
        version = None
    return render(
        request,
        "run.html",
        problems,
        run=run,
        run_id=run_id,
        config=json.dumps(_config(run), indent=2, sort_keys=True),
        version=version,
        charts=chart_payload({})["charts"],
        live=run.state not in TERMINAL,
    )


def run_series(request: Request) -> Response:
    """The run's stored curves, downsampled, as JSON: {charts, last_sequence, points}."""
    service = connections(request)
    run_id = request.path_params["run_id"]
    problems = Problems()
    try:
        read = service.get("registry", partial(_curves, service, run_id), problems)
    except PageNotFound as missing:
        return JSONResponse({"message": missing.message}, status_code=404)
    if read is None:
        return JSONResponse({"message": problems.lines[0]}, status_code=503)
    curves, last = read
    payload = chart_payload(curves)
    payload["last_sequence"] = last
    payload["points"] = sum(len(c.steps) for c in curves.values())
    return JSONResponse(payload)


def _config(run: run_pb2.Run) -> object:
    return json_format.MessageToDict(run.config)


async def run_events_stream(request: Request) -> Response:
    text = request.query_params.get("from", "1")
    if not text.isdigit():
        raise HTTPException(400, f"from must be a sequence number, not {text!r}")
    stream = run_events(connections(request), request.path_params["run_id"], int(text))
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _curves(service: Connections, run_id: str) -> tuple[dict[str, Curve], int]:
    """The run's stored curves, read in the largest pages the registry serves: a 50,000-event
    run is 5 calls instead of the client's 100 at the default page size."""
    return curves_from_events(_stored_events(service, names.run(run_id)))


def _stored_events(service: Connections, run: str) -> Iterator[run_pb2.RunEvent]:
    token = ""
    while True:
        request = rpb.ListRunEventsRequest(run=run, page_size=EVENTS_PAGE, page_token=token)
        response = service.registry.stub.ListRunEvents(request, timeout=service.settings.timeout)
        yield from response.events
        token = response.next_page_token
        if not token:
            return


def compare_page(request: Request) -> Response:
    """The chosen runs (404 for an unknown one); their curves are fetched by the browser from
    each run's `run_series` and overlaid there, one chart per metric."""
    problems = Problems()
    service = connections(request)
    chosen = [r for r in request.query_params.getlist("run") if r][:COMPARE_MAX]
    choices = service.items(
        "registry",
        lambda: newest(service.registry.list_runs(page_size=RUNS_PAGE), COMPARE_CHOICES),
        problems,
    )
    for run_id in chosen:
        service.get("registry", partial(service.registry.get_run, run_id), problems)
    return render(request, "compare.html", problems, choices=choices, chosen=chosen)


routes = [
    Route("/runs", runs_page),
    Route("/runs/{run_id}", run_page),
    Route("/runs/{run_id}/series", run_series),
    Route("/runs/{run_id}/events", run_events_stream),
    Route("/compare", compare_page),
]
