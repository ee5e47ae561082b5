"""The Ray cluster going away under a running training service, and coming back: the service
stays up, answers NOT_SERVING and refuses new jobs UNAVAILABLE while it cannot reach the cluster,
requeues the job that ran there, reconnects by itself once a cluster answers at the address
again, and the job resumes from the checkpoint store; then the service's Ray driver process alone
dies (CLUSTER_LOST), the service starts another and the job resumes again and finishes.
A cluster of its own (one node on a fixed GCS port, so its successor answers at the same
address), not the shared one of conftest.py."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import LoopThread
from tests.training.conftest import import_dataset
from tests.training.executors.conftest import ray_training
from tests.training.helpers import get, history, submit, tiny_job, wait_for, wait_until
from tunix_rt.registry.server import start_registry
from tunix_rt.training.executors.ray_cluster import LOOPBACK, import_ray
from tunix_rt.training.server import SERVICE_NAME
from tunix_rt.v1 import registry_service_pb2_grpc, run_pb2, training_service_pb2_grpc
from tunix_rt.v1 import training_service_pb2 as tpb

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def start_cluster(port: int) -> Any:
    import_ray(f"{LOOPBACK}:{port}")
    from ray.cluster_utils import Cluster

    head = {
        "num_cpus": 1,
        "num_gpus": 0,
        "node_ip_address": LOOPBACK,
        "gcs_server_port": port,
        "include_dashboard": False,
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture
def gcs_port() -> Iterator[int]:
    yield free_port()


def health(channel: grpc.Channel, service: str = "") -> int:
    stub: Any = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service)).status)


def test_the_cluster_going_away_requeues_its_job_and_the_service_reconnects(
    gcs_port: int, tmp_path: Path
) -> None:
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    first = start_cluster(gcs_port)
    loop = LoopThread()
    registry = loop.run(start_registry(data_dir=tmp_path / "registry"))
    training = ray_training(loop, registry.address, tmp_path, f"{LOOPBACK}:{gcs_port}")
    clusters = [first]
    channel = grpc.insecure_channel(training.address)
    registry_channel = grpc.insecure_channel(registry.address)
    try:
        stub: Any = training_service_pb2_grpc.TrainingServiceStub(channel)  # type: ignore[no-untyped-call]
        registry_stub: Any = registry_service_pb2_grpc.RegistryServiceStub(registry_channel)  # type: ignore[no-untyped-call]
        dataset = import_dataset(registry_stub, "ray-lost-cluster")
        assert health(channel) == health(channel, SERVICE_NAME) == serving
        hyper = {"max_steps": 20, "batch_size": 4, "checkpoint_interval_steps": 4}
        job = submit(stub, tiny_job(dataset, "torch", devices="cpu:1", **hyper), "cluster-lost")
        wait_until(lambda: get(stub, job.name).step >= 6, timeout=180, what="step 6")

        clusters.remove(first)
        first.shutdown()  # every Ray process of the cluster, the head's GCS with them
        wait_until(lambda: health(channel) == not_serving, timeout=90, what="NOT_SERVING")
        assert health(channel, SERVICE_NAME) == not_serving
        queued = wait_for(stub, job.name, {run_pb2.RUN_STATE_QUEUED}, timeout=60)
        assert queued.attempt == 1
        assert stub.ListDevices(tpb.ListDevicesRequest()).devices == []
        with pytest.raises(grpc.RpcError) as refused:
            submit(stub, tiny_job(dataset, "torch", devices="cpu:1", **hyper))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "unreachable" in refused.value.details()

        clusters.append(start_cluster(gcs_port))  # a cluster answers at the address again
        wait_until(lambda: health(channel) == serving, timeout=120, what="SERVING again")
        assert health(channel, SERVICE_NAME) == serving
        wait_until(lambda: get(stub, job.name).attempt >= 2, timeout=120, what="attempt 2")
        wait_until(lambda: get(stub, job.name).step >= 10, timeout=180, what="step 10")

        # The driver process alone dies (the cluster stays): its rank actors die with it.
        executor: Any = training.manager.executor
        os.kill(executor.link.process.pid, signal.SIGKILL)
        ended = {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED}
        done = wait_for(stub, job.name, ended, timeout=240)
        assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
        # Attempt 3 or later: on a saturated host a refresh may also go unanswered past
        # REFRESH_SECONDS once, which ends a healthy driver (one more CLUSTER_LOST requeue).
        assert done.attempt >= 3
        events = history(registry_stub, "runs/cluster-lost")
        reasons = [
            e.state_change.reason for e in events if e.WhichOneof("payload") == "state_change"
        ]
        # The cluster's end is seen first either as the rank's node leaving or as the driver
        # ending with it; the driver's own end is CLUSTER_LOST.
        requeued = [r for r in reasons if r.endswith("; will resume")]
        assert len(requeued) == done.attempt - 1, reasons
        assert requeued[0].startswith(("NODE_LOST: 127.0.0.1/", "CLUSTER_LOST: ")), reasons
        address = f"{LOOPBACK}:{gcs_port}"
        assert requeued[-1].startswith(f"CLUSTER_LOST: the Ray cluster at {address}"), reasons
        logs = [e.log.message for e in events if e.WhichOneof("payload") == "log"]
        resumed = [m for m in logs if m.startswith("resumed from the checkpoint of step")]
        assert len(resumed) == len(requeued), logs
        assert get(stub, job.name).step == 20
    finally:
        channel.close()
        registry_channel.close()
        loop.run(training.stop(0), timeout=90)
        loop.run(registry.stop(0))
        loop.close()
        for cluster in clusters:
            cluster.shutdown()
