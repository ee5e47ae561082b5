"""Pages of training jobs, read from the registry's runs.

The registry filters runs by state, owner and dataset, but knows nothing of training jobs: a run
is a job when its config holds a training spec, and the job's model is in that spec. Those two
filters are applied here, before paging, so every page but the last is full and every job
appears exactly once:

- a page is filled by reading runs from the registry's position after the previous page, in
  registry pages of at least SCAN_RUNS runs;
- when a registry page holds more matching jobs than the page still needs, it is read again up
  to the last one needed, so the registry's own token then continues right after it;
- a full page looks ahead for one more match, so a last page is never empty.

The page token is the registry's token (an opaque position: the runs' order is the registry's,
oldest first, and runs are never deleted) sealed with a fingerprint of every filter, so a token
reused with other filters is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import json_format

from tunix_rt.common import pagination
from tunix_rt.training.registry_link import RegistryLink
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2

SCAN_RUNS = 100  # the fewest runs read per registry call while looking for matches


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a listing returns; empty fields do not filter."""

    states: tuple[int, ...] = ()
    owner: str = ""
    dataset: str = ""
    model: str = ""  # models/{model}; a bare id is taken as one

    def key(self) -> list[object]:
        """What a page token is bound to."""
        return ["training_jobs", sorted(self.states), self.owner, self.dataset, self._model()]

    def _model(self) -> str:
        return self.model if not self.model or "/" in self.model else f"models/{self.model}"

    def spec_of(self, run: run_pb2.Run) -> TrainSpec | None:
        """The run's spec when the run is a job this filter selects (the registry applied the
        rest)."""
        if "spec" not in run.config.fields:
            return None  # a run not made by a training service
        spec = TrainSpec.from_json(json_format.MessageToDict(run.config)["spec"])
        if self.model and spec.registration.model != self._model():
            return None
        return spec


@dataclass(frozen=True)
class JobPage:
    jobs: list[tuple[run_pb2.Run, TrainSpec]]
    next_page_token: str  # empty on the last page


async def list_jobs(
    registry: RegistryLink, filters: JobFilter, page_size: int, page_token: str
) -> JobPage:
    """One page of jobs (see the module docstring); InvalidArgument for a bad size or token."""
    size = pagination.page_size(page_size)
    key = filters.key()
    position: str = pagination.decode(page_token, key) or ""
    jobs: list[tuple[run_pb2.Run, TrainSpec]] = []
    while len(jobs) < size:
        found, position = await _matches(registry, filters, position, size - len(jobs))
        jobs.extend(found)
        if not position:
            break
    if position:
        position = await _next_match(registry, filters, position)
    return JobPage(jobs, pagination.encode(position, key) if position else "")


async def _matches(
    registry: RegistryLink, filters: JobFilter, position: str, need: int
) -> tuple[list[tuple[run_pb2.Run, TrainSpec]], str]:
    """At most `need` matching jobs from one registry page read from `position`, and the
    registry's position right after the last run read ("" at the end)."""
    limit = min(max(need, SCAN_RUNS), pagination.MAX_PAGE_SIZE)
    while True:
        runs, after = await _runs(registry, filters, position, limit)
        found = [
            (n, run, spec)
            for n, run in enumerate(runs)
            if (spec := filters.spec_of(run)) is not None
        ]
        if len(found) <= need:
            return [(run, spec) for _, run, spec in found], after
        # Too many: read the page again only up to the last job needed. Runs are only ever
        # appended, so this reads the same runs, fewer of them (and simply reads again should a
        # run's state have left the filter meanwhile).
        limit = found[need - 1][0] + 1


async def _next_match(registry: RegistryLink, filters: JobFilter, position: str) -> str:
    """The position of the first registry page from `position` on that holds a matching job;
    "" when none does."""
    while position:
        runs, after = await _runs(registry, filters, position, SCAN_RUNS)
        if any(filters.spec_of(run) is not None for run in runs):
            return position
        position = after
    return ""


async def _runs(
    registry: RegistryLink, filters: JobFilter, position: str, limit: int
) -> tuple[Sequence[run_pb2.Run], str]:
    response = await registry.call(
        "runs",
        "ListRuns",
        rpb.ListRunsRequest(
            states=filters.states,  # type: ignore[arg-type]
            owner=filters.owner,
            dataset=filters.dataset,
            page_size=limit,
            page_token=position,
        ),
    )
    return list(response.runs), response.next_page_token
