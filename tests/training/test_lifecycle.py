"""Jobs through a real training service: real workers train a tiny model on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from tests.training.conftest import ROOT, Stack
from tests.training.helpers import (
    TERMINAL,
    free_devices,
    get,
    history,
    losses,
    submit,
    tiny_job,
    wait_for,
    wait_until,
)
from tunix_rt.training.server import start_training
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2
from tunix_rt.v1 import training_service_pb2 as tpb

SUCCEEDED, FAILED, CANCELLED = (
    run_pb2.RUN_STATE_SUCCEEDED,
    run_pb2.RUN_STATE_FAILED,
    run_pb2.RUN_STATE_CANCELLED,
)


def follow(stack: Stack, name: str, out: list[int], states: list[int]) -> None:
    """Reads a job's whole stream, recording sequences and state changes."""
    for response in stack.training_stub.StreamJobMetrics(
        tpb.StreamJobMetricsRequest(name=name, from_sequence=1), timeout=300
    ):
        event = response.run_event
        out.append(event.sequence)
        if event.WhichOneof("payload") == "state_change":
            states.append(event.state_change.to_state)


def test_job_trains_registers_and_streams_to_every_follower(stack: Stack) -> None:
    job = submit(stack.training_stub, tiny_job(stack.dataset, "jax"), "happy")
    followers = [([], []) for _ in range(3)]  # type: list[tuple[list[int], list[int]]]
    threads = [
        threading.Thread(target=follow, args=(stack, job.name, seqs, states))
        for seqs, states in followers
    ]
    for thread in threads:
        thread.start()
    done = wait_for(stack.training_stub, job.name, TERMINAL)
    for thread in threads:
        thread.join(60)
    assert done.state == SUCCEEDED, done.error.message
    # Every follower saw the same gap-free sequence, ending after the final state change.
    sequences = [seqs for seqs, _ in followers]
    assert sequences[0] == list(range(1, len(sequences[0]) + 1))
    assert all(seqs == sequences[0] for seqs in sequences)
    assert followers[0][1][-1] == SUCCEEDED
    stored = history(stack.registry_stub, "runs/happy")
    assert [e.sequence for e in stored] == sequences[0]
    # The loss falls and every step reported its metrics.
    curve = losses(stored)
    assert sorted(curve) == list(range(1, 13))
    assert sum(curve[s] for s in (10, 11, 12)) < sum(curve[s] for s in (1, 2, 3))
    names = set()
    for event in stored:
        if event.WhichOneof("payload") == "metrics":
            names |= set(event.metrics.values)
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_second"} <= names
    assert {"eval_loss", "eval_answer_accuracy"} <= names
    # The result is registered with its provenance, and checkpoints are recorded.
    version = stack.registry_stub.GetModelVersion(
        rpb.GetModelVersionRequest(name=done.registered_model_version)
    ).model_version
    provenance = json_format.MessageToDict(version.provenance)
    dataset = stack.registry_stub.GetDataset(rpb.GetDatasetRequest(name=stack.dataset)).dataset
    assert provenance["dataset_content_hash"] == dataset.content_hash
    assert provenance["seed"] == 7
    assert provenance["devices"]["ids"] == ["cpu:0"]
    assert provenance["config"]["hyper"]["max_steps"] == 12
    assert version.source_run == "runs/happy"
    checkpoints = stack.registry_stub.ListCheckpoints(
        rpb.ListCheckpointsRequest(run="runs/happy")
    ).checkpoints
    assert [c.step for c in checkpoints][-1] == 12
    assert free_devices(stack.training_stub) == 2


def test_two_jobs_wanting_the_whole_pool_run_one_after_the_other(stack: Stack) -> None:
    first = submit(stack.training_stub, tiny_job(stack.dataset, devices="cpu:2", max_steps=6))
    second = submit(stack.training_stub, tiny_job(stack.dataset, devices="cpu:2", max_steps=6))
    wait_for(stack.training_stub, first.name, {run_pb2.RUN_STATE_RUNNING} | TERMINAL)
    waiting = get(stack.training_stub, second.name)
    if get(stack.training_stub, first.name).state == run_pb2.RUN_STATE_RUNNING:
        assert waiting.state == run_pb2.RUN_STATE_QUEUED
        assert waiting.queue_position == 1
    one = wait_for(stack.training_stub, first.name, TERMINAL)
    two = wait_for(stack.training_stub, second.name, TERMINAL)
    assert one.state == two.state == SUCCEEDED
    assert two.start_time.ToDatetime() >= one.end_time.ToDatetime()
    assert list(two.devices.ids) == ["cpu:0", "cpu:1"]


def test_cancel_stops_a_running_job_and_frees_its_devices(stack: Stack) -> None:
    job = submit(stack.training_stub, tiny_job(stack.dataset, max_steps=5000))
    wait_until(lambda: get(stack.training_stub, job.name).step >= 2, what="training to start")
    stack.training_stub.CancelTrainingJob(
        tpb.CancelTrainingJobRequest(name=job.name, reason="test")
    )
    done = wait_for(stack.training_stub, job.name, TERMINAL, timeout=20)
    assert done.state == CANCELLED
    assert "test" in done.error.message
    assert free_devices(stack.training_stub) == 2


def test_a_killed_worker_fails_its_job_and_frees_its_devices(stack: Stack) -> None:
    job = submit(stack.training_stub, tiny_job(stack.dataset, max_steps=5000))
    job_id = job.name.removeprefix("trainingJobs/")
    wait_until(lambda: get(stack.training_stub, job.name).step >= 1, what="training to start")
    process = stack.training.manager.jobs[job_id].process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    done = wait_for(stack.training_stub, job.name, TERMINAL, timeout=30)
    assert done.state == FAILED
    assert "SIGKILL" in done.error.message
    assert free_devices(stack.training_stub) == 2


def test_a_job_killed_mid_run_and_resumed_matches_an_uninterrupted_run(stack: Stack) -> None:
    # The three runs share the stack's two CPU slots as test_torch_service's twin does: the
    # uninterrupted one trains beside the others (each worker's start-up and compilation, most of
    # a tiny run, overlaps another's) instead of before them. Queued jobs start in submission
    # order, so "cancelled" waits for the slot the killed worker frees.
    stub = stack.training_stub
    straight = submit(stub, tiny_job(stack.dataset, "jax", max_steps=24), "straight")
    interrupted = submit(stub, tiny_job(stack.dataset, "jax", max_steps=24), "interrupted")
    cancelled = submit(stub, tiny_job(stack.dataset, "jax", max_steps=24), "cancelled")
    wait_until(lambda: get(stub, interrupted.name).step >= 6, what="step 6")
    process = stack.training.manager.jobs["interrupted"].process
    assert process is not None
    # No chance to save anything: the resume starts from the newest checkpoint (every 4 steps).
    os.kill(process.pid, signal.SIGKILL)
    assert wait_for(stub, interrupted.name, TERMINAL).state == FAILED
    stub.ResumeTrainingJob(tpb.ResumeTrainingJobRequest(name=interrupted.name))
    # Cancel (SIGTERM) and resume continues the same way.
    wait_until(lambda: get(stub, cancelled.name).step >= 6, what="step 6")
    stub.CancelTrainingJob(tpb.CancelTrainingJobRequest(name=cancelled.name))
    assert wait_for(stub, cancelled.name, TERMINAL).state == CANCELLED
    stub.ResumeTrainingJob(tpb.ResumeTrainingJobRequest(name=cancelled.name))
    resumed = wait_for(stub, interrupted.name, TERMINAL)
    assert resumed.state == SUCCEEDED, resumed.error.message
    assert resumed.attempt == 2
    assert wait_for(stub, cancelled.name, TERMINAL).state == SUCCEEDED
    assert wait_for(stub, straight.name, TERMINAL).state == SUCCEEDED
    # The last value recorded for each step: the resumed attempt's where it re-ran a step.
    expected = losses(history(stack.registry_stub, "runs/straight"))
    for run in ("runs/interrupted", "runs/cancelled"):
        got = losses(history(stack.registry_stub, run))
        assert sorted(got) == sorted(expected) == list(range(1, 25))
        for step in expected:
            assert got[step] == pytest.approx(expected[step], rel=1e-4), (run, step)


def test_resuming_a_succeeded_job_is_refused(stack: Stack) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stack.training_stub.ResumeTrainingJob(
            tpb.ResumeTrainingJobRequest(name="trainingJobs/happy")
        )
    assert info.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)


def test_killing_and_restarting_the_service_leaves_nothing_stuck(
    stack: Stack, tmp_path: Path
) -> None:
    data_dir = tmp_path / "killed-service"
    code = (
        "import asyncio, sys, pathlib\n"
        "from tunix_rt.training.server import start_training\n"
        "async def main():\n"
        "    t = await start_training(registry_address=sys.argv[1],\n"
        "        data_dir=pathlib.Path(sys.argv[2]), cpu_slots=1, probe_gpus=False)\n"
        "    print(t.address, flush=True)\n"
        "    await t.server.wait_for_termination()\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'clients'}:{ROOT / 'services'}"}
    service = subprocess.Popen(
        [sys.executable, "-c", code, stack.registry.address, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert service.stdout is not None
    address = service.stdout.readline().strip()
    channel = grpc.insecure_channel(address)
    new_stub = __import__(
        "tunix_rt.v1.training_service_pb2_grpc", fromlist=["x"]
    ).TrainingServiceStub
    remote = new_stub(channel)
    job = submit(remote, tiny_job(stack.dataset, max_steps=5000))
    wait_until(lambda: get(remote, job.name).step >= 1, what="training to start")
    service.kill()
    service.wait(10)
    service.stdout.close()
    channel.close()
    run = stack.registry_stub.GetRun(rpb.GetRunRequest(name=job.run)).run
    assert run.state == run_pb2.RUN_STATE_RUNNING  # the record the killed service left behind
    # A new service on the same data directory recovers the job: requeued, running again.
    restarted = stack.loop.run(
        start_training(
            registry_address=stack.registry.address,
            data_dir=data_dir,
            cpu_slots=1,
            probe_gpus=False,
        )
    )
    try:
        channel = grpc.insecure_channel(restarted.address)
        remote = new_stub(channel)
        wait_until(
            lambda: (
                get(remote, job.name).state == run_pb2.RUN_STATE_RUNNING
                and get(remote, job.name).attempt >= 2
            ),
            what="the job to run again",
        )
        remote.CancelTrainingJob(tpb.CancelTrainingJobRequest(name=job.name))
        assert wait_for(remote, job.name, TERMINAL, timeout=30).state == CANCELLED
        assert free_devices(remote) == 1
        states = [
            e.state_change.to_state
            for e in history(stack.registry_stub, job.run)
            if e.WhichOneof("payload") == "state_change"
        ]
        assert states[:4] == [
            run_pb2.RUN_STATE_QUEUED,
            run_pb2.RUN_STATE_RUNNING,
            run_pb2.RUN_STATE_QUEUED,
            run_pb2.RUN_STATE_RUNNING,
        ]
        channel.close()
    finally:
        stack.loop.run(restarted.stop(0))


def test_a_registered_version_is_fine_tuned_further(stack: Stack) -> None:
    base = wait_for(stack.training_stub, "trainingJobs/happy", TERMINAL)
    assert base.state == SUCCEEDED
    job = tiny_job(stack.dataset, max_steps=4, checkpoint_interval_steps=0)
    job.base_model_version = "happy@latest"
    job.registration.model = "models/happy"
    job.registration.aliases.append("tuned")
    done = wait_for(stack.training_stub, submit(stack.training_stub, job).name, TERMINAL)
    assert done.state == SUCCEEDED, done.error.message
    assert done.registered_model_version == "models/happy/versions/2"
    version = stack.registry_stub.ResolveModelVersion(
        rpb.ResolveModelVersionRequest(reference="happy@tuned")
    ).model_version
    provenance = json_format.MessageToDict(version.provenance)
    assert provenance["config"]["base"]["model_version"] == "models/happy/versions/1"


def test_a_worker_error_fails_the_job_with_its_reason(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"architectures": ["NoSuchModel"]}')
    job = tiny_job(stack.dataset, max_steps=4)
    job.checkpoint_dir = str(tmp_path)
    done = wait_for(stack.training_stub, submit(stack.training_stub, job).name, TERMINAL)
    assert done.state == FAILED
    assert done.error.message
    assert free_devices(stack.training_stub) == 2
