"""The registry client's calls on training runs: the runs, their event history, checkpoints."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tunix_rt.client import names
from tunix_rt.client.registry.base import DEFAULT_PAGE_SIZE, RegistryCalls
from tunix_rt.client.registry.evaluations import evaluated_on
from tunix_rt.client.service_client import capped_page_size, pages
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import run_pb2


class RunCalls(RegistryCalls):
    """Runs as the registry records them (the training service writes them)."""

    def get_run(self, name: str) -> run_pb2.Run:
        response: pb.GetRunResponse = self._stub.GetRun(
            pb.GetRunRequest(name=names.run(name)), timeout=self.timeout
        )
        return response.run

    def list_runs(
        self,
        *,
        states: Sequence[run_pb2.RunState] = (),
        owner: str = "",
        dataset: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[run_pb2.Run]:
        def fetch(token: str) -> tuple[Sequence[run_pb2.Run], str]:
            request = pb.ListRunsRequest(
                states=states,
                owner=owner,
                dataset=evaluated_on(dataset) if dataset else "",
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListRunsResponse = self._stub.ListRuns(request, timeout=self.timeout)
            return response.runs, response.next_page_token

        return pages(fetch, limit)

    def list_run_events(
        self, run: str, *, from_sequence: int = 1, limit: int | None = None
    ) -> Iterator[run_pb2.RunEvent]:
        """The run's stored events from `from_sequence`, in order."""

        def fetch(token: str) -> tuple[Sequence[run_pb2.RunEvent], str]:
            request = pb.ListRunEventsRequest(
                run=names.run(run), from_sequence=from_sequence, page_token=token
            )
            response: pb.ListRunEventsResponse = self._stub.ListRunEvents(
                request, timeout=self.timeout
            )
            return response.events, response.next_page_token

        return pages(fetch, limit)

    def list_checkpoints(self, run: str) -> Iterator[run_pb2.Checkpoint]:
        def fetch(token: str) -> tuple[Sequence[run_pb2.Checkpoint], str]:
            request = pb.ListCheckpointsRequest(run=names.run(run), page_token=token)
            response: pb.ListCheckpointsResponse = self._stub.ListCheckpoints(
                request, timeout=self.timeout
            )
            return response.checkpoints, response.next_page_token

        return pages(fetch, None)
