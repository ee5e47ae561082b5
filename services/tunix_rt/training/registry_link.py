"""The training service's calls to the registry, with registry errors turned back into domain
errors (common.outgoing.registry_error), so a NOT_FOUND dataset reaches the training caller as
NOT_FOUND."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import grpc
from google.protobuf import struct_pb2

from tunix_rt.common import outgoing
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import registry_service_pb2_grpc, run_pb2


class RegistryLink:
    """Typed, error-mapped calls to the registry over one aio channel."""

    def __init__(self, settings: outgoing.OutgoingSettings) -> None:
        # Also how this service's workers and its completion evaluations dial (jobs.py).
        self.settings = settings
        self._channel = outgoing.aio_channel(settings, outgoing.REGISTRY)
        new_stub: Any = registry_service_pb2_grpc.RegistryServiceStub
        self.stub = new_stub(self._channel)

    @property
    def address(self) -> str:
        return self.settings.address

    async def close(self) -> None:
        await self._channel.close()

    async def call(self, what: str, method: str, request: Any, deadline: float = 30.0) -> Any:
        try:
            awaitable: Awaitable[Any] = getattr(self.stub, method)(request, timeout=deadline)
            return await awaitable
        except grpc.aio.AioRpcError as err:
            # The registry's message already names the resource, e.g. "dataset 'datasets/x'
            # not found".
            raise outgoing.registry_error(err, what) from None

    async def transition(
        self,
        run: str,
        state: int,
        expected: int,
        reason: str,
        owner: str,
        devices: run_pb2.DeviceAssignment | None = None,
        config_update: dict[str, Any] | None = None,
    ) -> run_pb2.Run:
        """Moves `run` from `expected` to `state` (TransitionRun), merging `config_update` into
        its config; the run after."""
        update = struct_pb2.Struct()
        update.update(config_update or {})
        request = rpb.TransitionRunRequest(
            name=run,
            state=state,  # type: ignore[arg-type]
            expected_state=expected,  # type: ignore[arg-type]
            devices=devices,
            reason=reason,
            owner=owner,
            config_update=update,
        )
        response = await self.call(run, "TransitionRun", request)
        transitioned: run_pb2.Run = response.run
        return transitioned

    async def append_events(self, run: str, events: Sequence[run_pb2.RunEvent]) -> None:
        await self.call(run, "AppendRunEvents", rpb.AppendRunEventsRequest(run=run, events=events))

    async def history(self, run: str, first: int, last: int) -> AsyncIterator[run_pb2.RunEvent]:
        """Stored events of `run` with sequences in [first, last], in order."""
        token = ""
        while True:
            response = await self.call(
                run,
                "ListRunEvents",
                rpb.ListRunEventsRequest(
                    run=run, from_sequence=first, page_size=1000, page_token=token
                ),
            )
            for event in response.events:
                if event.sequence > last:
                    return
                yield event
            token = response.next_page_token
            if not token:
                return

    async def runs(self, states: Sequence[Any], owner: str) -> list[run_pb2.Run]:
        found: list[run_pb2.Run] = []
        token = ""
        while True:
            response = await self.call(
                "runs",
                "ListRuns",
                rpb.ListRunsRequest(states=states, owner=owner, page_size=1000, page_token=token),
            )
            found.extend(response.runs)
            token = response.next_page_token
            if not token:
                return found
