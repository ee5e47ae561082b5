"""The Ray executor on a GPU host (`pytest -m gpu`, which `bash bench/gpu_check.sh` runs; skipped
without an NVIDIA GPU): the head node of the shared test cluster has the host's GPUs, and a torch
job on one of them runs as one rank that sees only the GPU Ray gave its actor."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from tests.training.executors.conftest import GPUS, RayStack
from tests.training.helpers import TERMINAL, get, submit, tiny_job, wait_for
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not GPUS, reason="needs an NVIDIA GPU (nvidia-smi lists none)"),
]


def test_a_torch_job_on_a_ray_gpu_trains_on_cuda(ray_stack: RayStack) -> None:
    stub = ray_stack.training_stub
    job = submit(stub, tiny_job(ray_stack.dataset, "torch", devices="gpu:1"), "ray-gpu")
    done = wait_for(stub, job.name, TERMINAL, timeout=280)
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
    version = get(stub, job.name).registered_model_version
    registered = ray_stack.registry_stub.GetModelVersion(rpb.GetModelVersionRequest(name=version))
    provenance = json_format.MessageToDict(registered.model_version.provenance)
    assert provenance["platform"] == "cuda"
    assert provenance["devices"]["ids"] == ["gpu:0"]


@pytest.mark.skipif(GPUS < 2, reason="needs two NVIDIA GPUs")
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_job_on_two_ray_gpus_trains_data_parallel_on_both(
    ray_stack: RayStack, backend: str
) -> None:
    """Both GPUs are the head node's: the job is one rank that sees both, torch running DDP over
    NCCL (torch/parallel.run_data_parallel), JAX one process over a two-device mesh."""
    stub = ray_stack.training_stub
    spec = tiny_job(ray_stack.dataset, backend, devices="gpu:2")
    job = submit(stub, spec, f"ray-gpu2-{backend}")
    done = wait_for(stub, job.name, TERMINAL, timeout=280)
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
    version = get(stub, job.name).registered_model_version
    registered = ray_stack.registry_stub.GetModelVersion(rpb.GetModelVersionRequest(name=version))
    provenance = json_format.MessageToDict(registered.model_version.provenance)
    assert provenance["platform"] in ("cuda", "gpu")
    assert provenance["device_count"] == 2
    assert provenance["devices"]["ids"] == ["gpu:0", "gpu:1"]
