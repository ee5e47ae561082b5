"""One real Ray cluster for every Ray-executor test (session-scoped: starting one takes ~10 s of
the machine's two cores): three nodes of one CPU each (the head also has the host's GPUs, if
any), all bound to 127.0.0.1, built with ray.cluster_utils.Cluster; and a registry plus a
training service on `--ray` that cluster, with a checkpoint store (`--checkpoint-uri`, a file://
URI)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support import LoopThread
from tests.training.conftest import import_dataset
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.training.devices import nvidia_gpus
from tunix_rt.training.executors.ray_cluster import LOOPBACK, import_ray
from tunix_rt.training.server import RunningTraining, start_training
from tunix_rt.v1 import registry_service_pb2_grpc, training_service_pb2_grpc

NODES = 3
# The host's GPUs go to the head node (none in CI; `pytest -m gpu` on a GPU host uses them).
GPUS = len(nvidia_gpus())


@dataclass
class RayStack:
    """A Ray cluster, and a registry and a training service whose jobs run on it."""

    cluster: Any  # ray.cluster_utils.Cluster
    loop: LoopThread
    registry: RunningRegistry
    training: RunningTraining
    registry_stub: Any
    training_stub: Any
    dataset: str


def ray_training(
    loop: LoopThread, registry_address: str, data_dir: Path, ray_address: str
) -> RunningTraining:
    """A training service on the Ray cluster at `ray_address`, with a checkpoint store under
    `data_dir`: checkpoints are copied where every node reads them, and each attempt's job
    directory is its own, as on nodes that share no disk. Its inventory is re-read every second
    (5 s in service): the tests wait for nodes that join and leave, and for clusters that go
    away. The GCS keeps the service's 10 s to answer: this host's two cores are often saturated
    while a cluster starts, and a shorter wait ended healthy drivers."""
    training = loop.run(
        start_training(
            registry_address=registry_address,
            data_dir=data_dir / "training",
            probe_gpus=False,
            ray_address=ray_address,
            checkpoint_uri=(data_dir / "checkpoint-store").as_uri(),
        ),
        timeout=120,
    )
    executor: Any = training.manager.executor
    executor.inventory_interval = 1.0
    return training


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    ray = import_ray(f"{LOOPBACK}:0")  # keeps every address on loopback (see ray_cluster.py)
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "num_gpus": GPUS, "node_ip_address": LOOPBACK}
    cluster = Cluster(initialize_head=True, head_node_args={**head, "include_dashboard": False})
    for _ in range(NODES - 1):
        cluster.add_node(num_cpus=1, num_gpus=0, node_ip_address=LOOPBACK)
    cluster.wait_for_nodes()
    # The tests read the cluster (nodes, placement groups) as a driver of their own; the
    # training service's driver is a process of its own (ray_driver.py).
    ray.init(
        address=cluster.address,
        _node_ip_address=LOOPBACK,
        include_dashboard=False,
        log_to_driver=False,
        namespace="tunix-rt",
    )
    yield cluster
    ray.shutdown()
    cluster.shutdown()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def ray_stack(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayStack]:
    loop = LoopThread()
    data_dir: Path = tmp_path_factory.mktemp("ray-stack")
    registry = loop.run(start_registry(data_dir=data_dir / "registry"))
    training = ray_training(loop, registry.address, data_dir, ray_cluster.address)
    registry_channel = grpc.insecure_channel(registry.address)
    training_channel = grpc.insecure_channel(training.address)
    registry_stub: Any = registry_service_pb2_grpc.RegistryServiceStub(registry_channel)  # type: ignore[no-untyped-call]
    training_stub: Any = training_service_pb2_grpc.TrainingServiceStub(training_channel)  # type: ignore[no-untyped-call]
    dataset = import_dataset(registry_stub, "ray-mini")
    yield RayStack(ray_cluster, loop, registry, training, registry_stub, training_stub, dataset)
    loop.run(training.stop(0))
    loop.run(registry.stop(0))
    registry_channel.close()
    training_channel.close()
    loop.close()
