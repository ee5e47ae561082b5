"""The training service on a real three-node Ray cluster (conftest.py): devices per node (and in
`tunix-rt devices`), the never-fits refusal naming the cluster, a data-parallel job across two
nodes whose losses match the same job on one node, cancelling a multi-node job and a rank dying
(every rank gone, its placement group released), and a job that loses its node resuming on
another from the checkpoint store; then nodes joining and leaving the cluster while the service
runs (the inventory refresh)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import json_format

from tests.training.executors.conftest import NODES, RayStack
from tests.training.helpers import get, history, losses, submit, tiny_job, wait_for, wait_until
from tunix_rt.client.cli import main
from tunix_rt.training import worker_protocol as wp
from tunix_rt.v1 import device_pb2, run_pb2
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import training_service_pb2 as tpb

SUCCEEDED, CANCELLED = run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_CANCELLED
ENDED = {SUCCEEDED, CANCELLED, run_pb2.RUN_STATE_FAILED}


def torch_job(stack: RayStack, devices: str, **hyper: Any) -> Any:
    return tiny_job(stack.dataset, "torch", devices=devices, **hyper)


def run_config(stack: RayStack, job_id: str) -> dict[str, Any]:
    run = stack.registry_stub.GetRun(rpb.GetRunRequest(name=f"runs/{job_id}")).run
    return json_format.MessageToDict(run.config)


def test_devices_are_the_cluster_nodes_cpus_each_named_by_its_node(ray_stack: RayStack) -> None:
    import ray

    listed = ray_stack.training_stub.ListDevices(tpb.ListDevicesRequest()).devices
    devices = [d for d in listed if d.kind == device_pb2.DEVICE_KIND_CPU]
    assert [d.id for d in devices] == [f"cpu:{n}" for n in range(NODES)]
    node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]
    hosts = [d.host for d in devices]
    assert {h.split("/")[1] for h in hosts} == node_ids  # one CPU per node, every node listed
    assert all(h.startswith("127.0.0.1/") for h in hosts)
    # `tunix-rt devices` lists them by node.
    argv = ["--training", ray_stack.training.address, "devices"]
    listed = CliRunner().invoke(main, argv)
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:2] == ["ID", "NODE"]
    short = sorted(h[: len("127.0.0.1/") + 12] for h in hosts)
    assert sorted(row.split()[1] for row in rows if row.startswith("cpu:")) == short


def test_a_job_wider_than_the_cluster_is_refused_at_once_saying_what_it_has(
    ray_stack: RayStack,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        submit(ray_stack.training_stub, torch_job(ray_stack, f"cpu:{NODES + 1}"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    message = caught.value.details()
    assert f"can never run {NODES + 1} cpu" in message
    assert f"Ray cluster ({NODES} node(s)" in message


@pytest.mark.slow
def test_a_two_node_data_parallel_job_matches_the_same_job_on_one_node(
    ray_stack: RayStack,
) -> None:
    stub = ray_stack.training_stub
    hyper = {"max_steps": 8, "batch_size": 4, "checkpoint_interval_steps": 0}
    spread = submit(stub, torch_job(ray_stack, "cpu:2", **hyper), "ray-dp-2")
    single = submit(stub, torch_job(ray_stack, "cpu:1", **hyper), "ray-dp-1")
    for job in (spread, single):
        done = wait_for(stub, job.name, ENDED, timeout=280)
        assert done.state == SUCCEEDED, done.error.message
    two = losses(history(ray_stack.registry_stub, "runs/ray-dp-2"))
    one = losses(history(ray_stack.registry_stub, "runs/ray-dp-1"))
    assert sorted(two) == sorted(one) == list(range(1, 9))
    for step in one:  # same global batch: rank r takes rows r::2 of each micro-batch
        assert abs(two[step] - one[step]) <= 1e-4, (step, two[step], one[step])
    nodes = run_config(ray_stack, "ray-dp-2")["nodes"]
    assert len(nodes) == 2 and len({n["node"] for n in nodes}) == 2
    assert len(run_config(ray_stack, "ray-dp-1")["nodes"]) == 1
    version = get(stub, spread.name).registered_model_version
    registered = ray_stack.registry_stub.GetModelVersion(rpb.GetModelVersionRequest(name=version))
    provenance = json_format.MessageToDict(registered.model_version.provenance)
    assert provenance["device_count"] == 2
    assert provenance["devices"]["host"].count("127.0.0.1/") == 2
    # With a checkpoint store every rank works in its own directory, as on nodes sharing no
    # disk: rank 1 got rank 0's tokenizer over the process group, not from rank 0's directory.
    attempt = ray_stack.training.manager.data_dir / "jobs" / "ray-dp-2" / "attempt-1"
    tokenizer = Path("tokenizer") / "tokenizer.json"
    own = attempt / "rank-1" / tokenizer
    assert own.read_bytes() == (attempt / tokenizer).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_cancelling_a_multi_node_job_ends_every_rank_and_releases_its_placement_group(
    ray_stack: RayStack, backend: str
) -> None:
    """JAX's ranks stop at the step rank 0 decides (jax/multiprocess.SharedStop), torch's at the
    step their all-reduced flag says: either way every rank ends and the job is CANCELLED."""
    from ray.util.placement_group import placement_group_table

    stub = ray_stack.training_stub
    name = f"ray-cancel-{backend}"
    spec = tiny_job(ray_stack.dataset, backend, devices="cpu:2", max_steps=5000)
    job = submit(stub, spec, name)
    wait_until(lambda: get(stub, job.name).step >= 1, timeout=180, what="training to start")
    attempt: Any = ray_stack.training.manager.jobs[name].process
    pids = list(attempt.pids)
    assert len(pids) == 2
    stub.CancelTrainingJob(tpb.CancelTrainingJobRequest(name=job.name, reason="test"))
    assert wait_for(stub, job.name, ENDED, timeout=60).state == CANCELLED
    # Stopped by the request itself, not killed after the grace period.
    assert attempt.returncode == wp.EXIT_CANCELLED
    for pid in pids:
        wait_until(lambda pid=pid: not _alive(pid), timeout=30, what=f"rank pid {pid} to end")
    groups = [g for g in placement_group_table().values() if name in g["name"]]
    assert groups and all(g["state"] == "REMOVED" for g in groups)
    free = stub.ListDevices(tpb.ListDevicesRequest()).devices
    assert all(d.state == device_pb2.DEVICE_STATE_AVAILABLE for d in free)


@pytest.mark.slow
def test_a_rank_that_dies_fails_the_job_and_takes_every_rank_down(ray_stack: RayStack) -> None:
    from ray.util.placement_group import placement_group_table

    stub = ray_stack.training_stub
    job = submit(stub, torch_job(ray_stack, "cpu:2", max_steps=5000), "ray-rank-dies")
    wait_until(lambda: get(stub, job.name).step >= 1, timeout=180, what="training to start")
    attempt: Any = ray_stack.training.manager.jobs["ray-rank-dies"].process
    pids = list(attempt.pids)
    os.kill(pids[1], signal.SIGKILL)  # rank 1, not the one that reports
    done = wait_for(stub, job.name, ENDED, timeout=60)
    assert done.state == run_pb2.RUN_STATE_FAILED
    assert "SIGKILL" in done.error.message
    for pid in pids:
        wait_until(lambda pid=pid: not _alive(pid), timeout=30, what=f"rank pid {pid} to end")
    groups = [g for g in placement_group_table().values() if "ray-rank-dies" in g["name"]]
    assert groups and all(g["state"] == "REMOVED" for g in groups)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (ended, not yet reaped by its Ray worker parent) has no command line left.
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_jax_job_across_nodes_that_loses_one_resumes_on_another_and_matches_one_node(
    ray_stack: RayStack,
) -> None:
    """A JAX job over two nodes (jax.distributed, one process per node) loses a node at step 6,
    is requeued, and resumes on two others from the store's copy, in every rank's own
    directory; its final loss is the same job's on one node, uninterrupted. Last in this module
    but for the join/leave test: it takes a node out of the shared cluster for good."""
    stub = ray_stack.training_stub
    # 30 steps: the node goes at step 6, well before a fast host finishes.
    hyper = {"max_steps": 30, "batch_size": 4, "checkpoint_interval_steps": 4}
    straight = submit(stub, tiny_job(ray_stack.dataset, "jax", **hyper), "ray-straight")
    assert wait_for(stub, straight.name, ENDED, timeout=200).state == SUCCEEDED
    spread = tiny_job(ray_stack.dataset, "jax", devices="cpu:2", **hyper)
    job = submit(stub, spread, "ray-lost")
    wait_until(lambda: get(stub, job.name).step >= 6, timeout=180, what="step 6")
    first_nodes = [n["node"] for n in run_config(ray_stack, "ray-lost")["nodes"]]
    assert len(set(first_nodes)) == 2
    workers = {n.node_id: n for n in ray_stack.cluster.worker_nodes}
    lost = next(n for n in first_nodes if n.rpartition("/")[2] in workers)  # never the head
    ray_stack.cluster.remove_node(workers[lost.rpartition("/")[2]])
    done = wait_for(stub, job.name, ENDED, timeout=240)
    assert done.state == SUCCEEDED, done.error.message
    assert done.attempt == 2
    events = history(ray_stack.registry_stub, "runs/ray-lost")
    reasons = [e.state_change.reason for e in events if e.WhichOneof("payload") == "state_change"]
    assert any(r.startswith(f"NODE_LOST: {lost}") for r in reasons), reasons
    logs = [e.log.message for e in events if e.WhichOneof("payload") == "log"]
    assert any("2 cpu device(s) in 2 processes" in m for m in logs), logs
    # The second attempt's directories are new: every rank resumed from the store's copy.
    [copied] = [m for m in logs if m.startswith("copied the checkpoint of step")]
    copied_step = copied.split()[5]
    assert f"resumed from the checkpoint of step {copied_step}" in logs, logs
    attempt = ray_stack.training.manager.data_dir / "jobs" / "ray-lost" / "attempt-2"
    assert [p.name for p in (attempt / "rank-1" / "checkpoints").iterdir()] == [copied_step]
    assert lost not in [n["node"] for n in run_config(ray_stack, "ray-lost")["nodes"]]
    final = losses(history(ray_stack.registry_stub, "runs/ray-straight"))
    resumed = losses(events)
    assert sorted(resumed) == list(range(1, 31))
    for step in final:  # same global batch: rank r places rows r*2..r*2+1 of each micro-batch
        assert abs(resumed[step] - final[step]) <= 1e-4, (step, resumed[step], final[step])


def cpu_devices(stack: RayStack) -> list[Any]:
    listed = stack.training_stub.ListDevices(tpb.ListDevicesRequest()).devices
    return [d for d in listed if d.kind == device_pb2.DEVICE_KIND_CPU]


@pytest.mark.slow
def test_nodes_that_join_and_leave_while_the_service_runs_change_its_inventory(
    ray_stack: RayStack,
) -> None:
    """After the node-loss test (the cluster has one node fewer): a node added to the running
    cluster shows up in ListDevices under a new id, a job as wide as the grown cluster is taken
    and runs across it; the node leaving mid-job requeues the job, which waits (no longer
    fitting is no failure on a cluster) until another node joins, then resumes and finishes;
    a node removed while idle leaves the inventory again."""
    from tunix_rt.training.executors.ray_cluster import LOOPBACK

    stub = ray_stack.training_stub
    before = cpu_devices(ray_stack)
    wider = len(before) + 1
    with pytest.raises(grpc.RpcError) as caught:
        submit(stub, torch_job(ray_stack, f"cpu:{wider}"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    node = ray_stack.cluster.add_node(num_cpus=1, num_gpus=0, node_ip_address=LOOPBACK)
    ray_stack.cluster.wait_for_nodes()
    wait_until(lambda: len(cpu_devices(ray_stack)) == wider, timeout=60, what="the new node")
    [added] = [d for d in cpu_devices(ray_stack) if d.id not in {b.id for b in before}]
    assert added.host.endswith(f"/{node.node_id}")
    # Ids are never reused: the new node's CPU is numbered after every id the service gave.
    assert int(added.id.split(":")[1]) >= NODES
    # Refusals name the cluster as it is now.
    with pytest.raises(grpc.RpcError) as caught:
        submit(stub, torch_job(ray_stack, f"cpu:{wider + 1}"))
    assert f"Ray cluster ({wider} node(s)" in caught.value.details()
    hyper = {"max_steps": 60, "batch_size": 2 * wider, "checkpoint_interval_steps": 5}
    job = submit(stub, torch_job(ray_stack, f"cpu:{wider}", **hyper), "ray-grown")
    wait_until(lambda: get(stub, job.name).step >= 3, timeout=240, what="step 3")
    nodes = {n["node"] for n in run_config(ray_stack, "ray-grown")["nodes"]}
    assert added.host in nodes and len(nodes) == wider
    ray_stack.cluster.remove_node(node)
    queued = wait_for(stub, job.name, {run_pb2.RUN_STATE_QUEUED}, timeout=120)
    assert queued.attempt == 1
    wait_until(
        lambda: added.id not in {d.id for d in cpu_devices(ray_stack)},
        timeout=60,
        what="the removed node to leave the inventory",
    )
    interval = ray_stack.training.manager.executor.inventory_interval
    time.sleep(3 * interval)  # refreshes come and go: the job waits, it is not failed
    assert get(stub, job.name).state == run_pb2.RUN_STATE_QUEUED
    again = ray_stack.cluster.add_node(num_cpus=1, num_gpus=0, node_ip_address=LOOPBACK)
    ray_stack.cluster.wait_for_nodes()
    done = wait_for(stub, job.name, ENDED, timeout=240)
    assert done.state == SUCCEEDED, done.error.message
    assert done.attempt == 2
    nodes = {n["node"] for n in run_config(ray_stack, "ray-grown")["nodes"]}
    assert any(n.endswith(f"/{again.node_id}") for n in nodes) and len(nodes) == wider
    ray_stack.cluster.remove_node(again)
    wait_until(
        lambda: len(cpu_devices(ray_stack)) == len(before),
        timeout=60,
        what="the removed node to leave the inventory",
    )
    assert [d.id for d in cpu_devices(ray_stack)] == [d.id for d in before]
