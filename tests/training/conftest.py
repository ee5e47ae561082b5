"""Fixtures: a real registry and a real training service on loopback, a dataset of shipped
traces, and generated-client stubs for both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support import LoopThread
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.training.server import RunningTraining, start_training
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import registry_service_pb2_grpc, training_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "datasets" / "reasoning-mini-v1.jsonl"


@dataclass
class Stack:
    """A registry and a training service, and stubs to call them."""

    loop: LoopThread
    registry: RunningRegistry
    training: RunningTraining
    registry_stub: Any
    training_stub: Any
    data_dir: Path
    dataset: str

    def restart_training(self, cpu_slots: int = 2) -> None:
        """Stops the training service gracefully and starts a new one on the same data dir."""
        self.loop.run(self.training.stop(0))
        self.training = self.loop.run(
            start_training(
                registry_address=self.registry.address,
                data_dir=self.data_dir / "training",
                cpu_slots=cpu_slots,
                probe_gpus=False,
            )
        )
        channel = grpc.insecure_channel(self.training.address)
        new_stub: Any = training_service_pb2_grpc.TrainingServiceStub
        self.training_stub = new_stub(channel)


def import_dataset(stub: Any, dataset_id: str, path: Path = MINI) -> str:
    data = path.read_bytes()
    stub.ImportTraces(
        iter([rpb.ImportTracesRequest(options=rpb.ImportOptions(source=dataset_id), data=data)])
    )
    stub.CreateDataset(
        rpb.CreateDatasetRequest(
            dataset_id=dataset_id,
            filter={"source": dataset_id},
            split={"eval_fraction": 0.1, "seed": 0},
        )
    )
    return f"datasets/{dataset_id}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    loop = LoopThread()
    data_dir = tmp_path_factory.mktemp("stack")
    registry = loop.run(start_registry(data_dir=data_dir / "registry"))
    training = loop.run(
        start_training(
            registry_address=registry.address,
            data_dir=data_dir / "training",
            cpu_slots=2,
            probe_gpus=False,
        )
    )
    new_registry_stub: Any = registry_service_pb2_grpc.RegistryServiceStub
    new_training_stub: Any = training_service_pb2_grpc.TrainingServiceStub
    registry_channel = grpc.insecure_channel(registry.address)
    training_channel = grpc.insecure_channel(training.address)
    registry_stub = new_registry_stub(registry_channel)
    dataset = import_dataset(registry_stub, "mini")
    stack = Stack(
        loop,
        registry,
        training,
        registry_stub,
        new_training_stub(training_channel),
        data_dir,
        dataset,
    )
    yield stack
    loop.run(stack.training.stop(0))
    loop.run(registry.stop(0))
    registry_channel.close()
    training_channel.close()
    loop.close()
