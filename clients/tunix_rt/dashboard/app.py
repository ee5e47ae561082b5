"""The dashboard's Starlette application: its routes, static files and error pages.

    app = create_app(Settings(registry="127.0.0.1:50051", training=..., inference=...))
    uvicorn.run(app, port=8080)          # what `tunix-rt dashboard` does

Unknown paths and ids are 404 pages; any other failure is a 500 page that names no internals
(the traceback goes to the server's log). Pages that change something (cancel, resume) are POSTs
that must come from the dashboard's own pages (same Origin), so another site cannot trigger them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tunix_rt.dashboard.connections import Connections, PageNotFound, Settings
from tunix_rt.dashboard.pages import data, evaluations, jobs, models, runs
from tunix_rt.dashboard.rendering import render

STATIC = Path(__file__).resolve().parent / "static"

logger = logging.getLogger(__name__)


async def _home(request: Request) -> Response:
    return RedirectResponse("/jobs", status_code=303)


async def _not_found(request: Request, error: Exception) -> Response:
    message = error.message if isinstance(error, PageNotFound) else "There is no such page."
    return render(request, "error.html", heading="Not found", message=message, status_code=404)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return await _not_found(request, error)
    return render(
        request,
        "error.html",
        heading=f"Error {error.status_code}",
        message=str(error.detail),
        status_code=error.status_code,
    )


async def _server_error(request: Request, error: Exception) -> Response:
    logger.exception("dashboard page %s failed", request.url.path, exc_info=error)
    return render(
        request,
        "error.html",
        heading="Something went wrong",
        message="This page failed to render; the dashboard's log has the details.",
        status_code=500,
    )


def create_app(settings: Settings) -> Starlette:
    """The dashboard for the services `settings` names; its clients close with the app."""
    connections = Connections(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        connections.close()

    routes = [
        Route("/", _home),
        *jobs.routes,
        *runs.routes,
        *models.routes,
        *evaluations.routes,
        *data.routes,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            PageNotFound: _not_found,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.connections = connections
    return app
