"""Read-after-stream consistency through real services: whoever sees a job end (its final state
change on StreamJobMetrics, or a terminal state from GetTrainingJob) and then reads the run's
history from the registry finds every event of the job up to that end.

A training service whose event batches reach the registry only every 30 seconds makes the race
certain: without the guarantee, every ordinary event is still unstored when a job ends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from tests.training.conftest import Stack
from tests.training.helpers import TERMINAL, history, submit, tiny_job, wait_until
from tunix_rt.training.server import start_training
from tunix_rt.v1 import run_pb2, training_service_pb2_grpc
from tunix_rt.v1 import training_service_pb2 as tpb

SLOW_FLUSH = 30.0  # seconds between batches of job events to the registry


@dataclass
class Reads:
    """What one job's follower streamed and what it and a poller read when they saw the end."""

    streamed: list[tuple[int, str]] = field(default_factory=list)
    stored_at_end: list[tuple[int, str]] | None = None  # the follower's read
    polled_state: int = 0
    polled_last_sequence: int = 0
    stored_at_poll: list[tuple[int, str]] | None = None  # the poller's read


def _keys(events: list[run_pb2.RunEvent]) -> list[tuple[int, str]]:
    return [(e.sequence, e.WhichOneof("payload") or "") for e in events]


def _follow(training: Any, registry: Any, name: str, run: str, reads: Reads) -> None:
    """Streams the whole job; on its final state change, reads the registry at once."""
    for response in training.StreamJobMetrics(
        tpb.StreamJobMetricsRequest(name=name, from_sequence=1), timeout=300
    ):
        event = response.run_event
        reads.streamed.append(_keys([event])[0])
        if event.WhichOneof("payload") == "state_change" and event.state_change.to_state in (
            TERMINAL
        ):
            reads.stored_at_end = _keys(history(registry, run))


def _poll(training: Any, registry: Any, name: str, run: str, reads: Reads) -> None:
    """Polls GetTrainingJob; on the first terminal state, reads the registry at once."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = training.GetTrainingJob(tpb.GetTrainingJobRequest(name=name)).training_job
        if job.state in TERMINAL:
            reads.stored_at_poll = _keys(history(registry, run))
            reads.polled_state, reads.polled_last_sequence = job.state, job.last_sequence
            return
        time.sleep(0.005)


def test_whoever_sees_a_job_end_finds_its_whole_history_stored(
    stack: Stack, tmp_path: Path
) -> None:
    training = stack.loop.run(
        start_training(
            registry_address=stack.registry.address,
            data_dir=tmp_path / "training",
            cpu_slots=1,
            probe_gpus=False,
            event_flush_interval=SLOW_FLUSH,
        )
    )
    channel = grpc.insecure_channel(training.address)
    new_stub: Any = training_service_pb2_grpc.TrainingServiceStub
    stub = new_stub(channel)
    try:
        # One slot: `succeeds` runs while the others wait; `queued` is cancelled in the queue,
        # `fails` fails in its worker once `succeeds` is done.
        bad_model = tmp_path / "bad-model"
        bad_model.mkdir()
        (bad_model / "config.json").write_text('{"architectures": ["NoSuchModel"]}')
        failing = tiny_job(stack.dataset, max_steps=4)
        failing.checkpoint_dir = str(bad_model)
        jobs = {
            "succeeds": submit(stub, tiny_job(stack.dataset, max_steps=6), "succeeds"),
            "queued": submit(stub, tiny_job(stack.dataset, max_steps=6), "queued"),
            "fails": submit(stub, failing, "fails"),
        }
        reads = {job_id: Reads() for job_id in jobs}
        threads = [
            threading.Thread(
                target=target, args=(stub, stack.registry_stub, job.name, job.run, reads[job_id])
            )
            for job_id, job in jobs.items()
            for target in (_follow, _poll)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: bool(reads["queued"].streamed), what="the follower of `queued`")
        stub.CancelTrainingJob(tpb.CancelTrainingJobRequest(name=jobs["queued"].name))
        for thread in threads:
            thread.join(300)
        assert not any(thread.is_alive() for thread in threads)

        expected_end = {
            "succeeds": run_pb2.RUN_STATE_SUCCEEDED,
            "queued": run_pb2.RUN_STATE_CANCELLED,
            "fails": run_pb2.RUN_STATE_FAILED,
        }
        for job_id, read in reads.items():
            streamed = read.streamed
            assert [seq for seq, _ in streamed] == list(range(1, len(streamed) + 1)), job_id
            assert streamed[-1][1] == "state_change", job_id
            assert read.stored_at_end == streamed, job_id
            assert read.polled_state == expected_end[job_id], job_id
            assert read.stored_at_poll == streamed, job_id
            assert read.polled_last_sequence == len(streamed), job_id
        assert len(reads["succeeds"].streamed) > 6  # state changes, metrics, checkpoints, logs
    finally:
        channel.close()
        stack.loop.run(training.stop(0))
