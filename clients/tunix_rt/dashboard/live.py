"""A run's live metrics as server-sent events: the training service's `StreamJobMetrics`, read
on a worker thread through the dashboard's client channel and pushed to the browser.

Events (`event:` name, JSON `data:`): `metrics` {sequence, step, values} for every metric event;
`end` {state} after the event that ended the run; `problem` {message} when the stream cannot be
read (the training service is down, or no longer knows the job). A comment line every
`KEEPALIVE_S` seconds keeps idle connections open through proxies. When the browser goes away
the gRPC call is cancelled, which ends the worker thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import grpc

from tunix_rt.client.training import job_name
from tunix_rt.dashboard.connections import Connections
from tunix_rt.dashboard.rendering import state_name
from tunix_rt.v1 import run_pb2
from tunix_rt.v1 import training_service_pb2 as tpb

KEEPALIVE_S = 15.0
# Reopening after the service says this subscriber fell behind: at most this many times in a row.
MAX_REOPENINGS = 5
TERMINAL = frozenset(
    {
        run_pb2.RUN_STATE_SUCCEEDED,
        run_pb2.RUN_STATE_FAILED,
        run_pb2.RUN_STATE_CANCELLED,
        run_pb2.RUN_STATE_PRUNED,
    }
)


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Reader:
    """Reads the job's stream on a thread into an asyncio queue; `cancel()` ends it."""

    def __init__(self, connections: Connections, run_id: str, from_sequence: int) -> None:
        self.connections = connections
        self.name = job_name(run_id)
        self.next_sequence = max(1, from_sequence)
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._call: Any = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def _put(self, item: str | None) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def run(self) -> None:
        try:
            self._read()
        except grpc.RpcError as error:
            if not self._cancelled.is_set():
                message = self.connections.describe("training", error)
                self._put(sse("problem", {"message": f"Live updates stopped. {message}"}))
        finally:
            self._put(None)

    def _read(self) -> None:
        stub = self.connections.training.stub
        for _ in range(MAX_REOPENINGS):
            request = tpb.StreamJobMetricsRequest(name=self.name, from_sequence=self.next_sequence)
            with self._lock:
                if self._cancelled.is_set():
                    return
                self._call = stub.StreamJobMetrics(request)
            fell_behind = False
            for response in self._call:
                if response.HasField("fell_behind"):
                    fell_behind = True
                    break
                self._deliver(response.run_event)
            if not fell_behind:
                return

    def _deliver(self, event: run_pb2.RunEvent) -> None:
        if event.sequence < self.next_sequence:
            return  # delivered before a reopening
        self.next_sequence = event.sequence + 1
        if event.HasField("metrics"):
            values = dict(event.metrics.values)
            self._put(
                sse("metrics", {"sequence": event.sequence, "step": event.step, "values": values})
            )
        elif event.HasField("state_change") and event.state_change.to_state in TERMINAL:
            self._put(sse("end", {"state": state_name(event.state_change.to_state)}))


async def run_events(
    connections: Connections, run_id: str, from_sequence: int
) -> AsyncIterator[str]:
    """The server-sent events of run `run_id` from `from_sequence` until the run ends or the
    browser leaves."""
    reader = _Reader(connections, run_id, from_sequence)
    thread = threading.Thread(target=reader.run, name=f"sse-{run_id}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = await asyncio.wait_for(reader.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                return
            yield item
    finally:
        reader.cancel()
