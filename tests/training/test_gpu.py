"""GPU-marked tests: what only a GPU host can show. `bash bench/gpu_check.sh` runs them
(`pytest -m gpu`); on a host without an NVIDIA GPU they are skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from tests.support import LoopThread
from tests.training.conftest import import_dataset
from tests.training.helpers import TERMINAL, history, submit, tiny_job, wait_for
from tunix_rt.registry.server import start_registry
from tunix_rt.training import peak_flops
from tunix_rt.training.devices import nvidia_gpus
from tunix_rt.training.server import start_training
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import registry_service_pb2_grpc, run_pb2, training_service_pb2_grpc
from tunix_rt.v1 import training_service_pb2 as tpb

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not nvidia_gpus(), reason="needs an NVIDIA GPU (nvidia-smi lists none)"),
]


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """A registry and a training service that inventories the host's GPUs; (registry stub,
    training stub)."""
    loop = LoopThread()
    data_dir: Path = tmp_path_factory.mktemp("gpu")
    registry = loop.run(start_registry(data_dir=data_dir / "registry"))
    training = loop.run(
        start_training(registry_address=registry.address, data_dir=data_dir / "training")
    )
    registry_channel = grpc.insecure_channel(registry.address)
    training_channel = grpc.insecure_channel(training.address)
    new_registry: Any = registry_service_pb2_grpc.RegistryServiceStub
    new_training: Any = training_service_pb2_grpc.TrainingServiceStub
    yield new_registry(registry_channel), new_training(training_channel)
    loop.run(training.stop(0))
    loop.run(registry.stop(0))
    registry_channel.close()
    training_channel.close()
    loop.close()


def test_every_gpu_is_inventoried_with_its_datasheet_peak(gpu_stack: tuple[Any, Any]) -> None:
    _, training = gpu_stack
    listed = training.ListDevices(tpb.ListDevicesRequest()).devices
    gpus = [d for d in listed if d.id.startswith("gpu:")]
    assert len(gpus) == len(nvidia_gpus())
    for gpu in gpus:
        peak = peak_flops.gpu_peak(gpu.description)
        assert peak is not None, f"{gpu.description} is missing from training.peak_flops"
        assert gpu.peak_flops_bf16 == pytest.approx(peak.bf16)
        assert gpu.peak_flops_source.startswith("datasheet")


def test_a_bfloat16_torch_job_on_one_gpu_streams_its_mfu(gpu_stack: tuple[Any, Any]) -> None:
    registry, training = gpu_stack
    dataset = import_dataset(registry, "gpu-mini")
    job = submit(training, tiny_job(dataset, "torch", devices="gpu:1", max_steps=6), "gpu-mfu")
    done = wait_for(training, job.name, TERMINAL)
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
    steps = [
        dict(e.metrics.values)
        for e in history(registry, "runs/gpu-mfu")
        if e.HasField("metrics") and "tokens_per_second" in e.metrics.values
    ]
    assert len(steps) == 6 and all(0 < s["mfu"] <= 1 for s in steps)
    version = registry.GetModelVersion(
        rpb.GetModelVersionRequest(name=done.registered_model_version)
    ).model_version
    provenance = json_format.MessageToDict(version.provenance)
    assert provenance["compute_dtype"] == "bfloat16"
    assert provenance["peak_flops_dtype"] == "bfloat16"
    assert provenance["peak_flops_source"].startswith("datasheet")
