"""What the page modules share: the request's connections, query parameters, and the guard on
pages that change something."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request

from tunix_rt.dashboard.connections import Connections

T = TypeVar("T")

# Rows a list page shows unless asked for another number.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Most items a list page reads to find the newest: the services list runs and jobs oldest first
# (ListRuns, ListTrainingJobs) with no other order, so the newest are at the end.
MAX_SCAN = 20_000


def newest(items: Iterable[T], count: int) -> list[T]:
    """The last `count` of the first MAX_SCAN `items` (listed oldest first), newest first."""
    return list(reversed(collections.deque(itertools.islice(items, MAX_SCAN), maxlen=count)))


def connections(request: Request) -> Connections:
    found: Connections = request.app.state.connections
    return found


def limit(request: Request) -> int:
    """The `limit` query parameter, bounded; a bad one is a 400 page."""
    text = request.query_params.get("limit", str(DEFAULT_LIMIT))
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(400, f"limit must be a whole number, not {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise HTTPException(400, f"limit must be between 1 and {MAX_LIMIT}")
    return value


def same_origin(request: Request) -> None:
    """Refuses (403) a POST whose Origin is another site's: the dashboard calls the services
    with its own token, so only its own pages may ask it to change something."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "This action must come from the dashboard's own pages.")
