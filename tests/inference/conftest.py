"""Fixtures: a real registry and a real inference service on loopback, with tiny random-init
models registered the way training registers them (a deterministic tar of the model directory,
UploadArtifact, CreateModelVersion with aliases).

Reusable by every inference test module: `inference_stack` (session-scoped) gives stubs for
RegistryService, InferenceService and GRPCInferenceService, and a registered model `tiny`
(versions 1 and 2, alias `candidate` → 1); `make_model_dir` and `register_model` make more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support import LoopThread
from tunix_rt.inference.server import RunningInference, start_inference
from tunix_rt.models.interchange.archive import pack_model_dir
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.training.worker import upload
from tunix_rt.v1 import (
    inference_service_pb2_grpc,
    model_pb2,
    oip_grpc_service_pb2_grpc,
    registry_service_pb2_grpc,
)
from tunix_rt.v1 import registry_service_pb2 as rpb

# tunix and flax (pinned) call APIs that newer flax / jax deprecate, from model constructors and
# the engines; tests must not fail on those third-party warnings. Filtered by message; every
# inference test module uses `pytestmark = JAX_WARNINGS`.
JAX_WARNINGS = [
    pytest.mark.filterwarnings(f"ignore:{message}:DeprecationWarning")
    for message in (
        "'sharding' is deprecated, use 'out_sharding'",
        "'.value' access is now deprecated",
        "jax.interpreters.pxla.thread_resources is deprecated",  # tunix models' forward pass
    )
]

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "datasets" / "reasoning-mini-v1.jsonl"
MODEL = "tiny"


def make_model_dir(
    path: Path, *, seed: int = 0, chat_template: str = "plain", preset: str = "llama3-tiny"
) -> Path:
    """A random-init model directory of `preset` (JAX backend format) with a BPE tokenizer
    trained on the shipped mini dataset's prompts."""
    from tunix_rt.models import presets
    from tunix_rt.models.jax.model import create_model
    from tunix_rt.models.jax.model_dir import write_model_dir
    from tunix_rt.models.tokenizer import train_tokenizer

    arch = presets.get(preset).config
    texts = [json.loads(line)["prompt"] for line in MINI.read_text().splitlines() if line.strip()]
    # The GPT-2-style split (split_letters=False): the engine tests count tokens of this tokenizer.
    tokenizer = train_tokenizer(texts, arch.vocab_size, split_letters=False)
    model = create_model(arch, seed)
    return write_model_dir(
        path, model, arch, tokenizer, chat_template=chat_template, training_step=0
    )


def register_model(
    stub: Any, model_dir: Path, model: str, aliases: tuple[str, ...] = ()
) -> model_pb2.ModelVersion:
    """Uploads `model_dir` as an artifact and registers it as a new version of `model`."""
    artifact = upload(stub, pack_model_dir(model_dir))
    response = stub.CreateModelVersion(
        rpb.CreateModelVersionRequest(
            parent=f"models/{model}",
            model_version=model_pb2.ModelVersion(artifact=artifact),
            aliases=list(aliases),
        )
    )
    version: model_pb2.ModelVersion = response.model_version
    return version


def set_alias(stub: Any, model: str, alias: str, version: int) -> None:
    stub.SetModelAlias(
        rpb.SetModelAliasRequest(model=f"models/{model}", alias=alias, version=version)
    )


@dataclass
class InferenceStack:
    """A registry and an inference service, stubs to call them, and the registered model."""

    loop: LoopThread
    registry: RunningRegistry
    inference: RunningInference
    registry_stub: Any
    stub: Any  # tunix_rt.v1.InferenceService
    oip_stub: Any  # inference.GRPCInferenceService
    data_dir: Path
    model_dirs: list[Path]  # version 1's and version 2's directories
    versions: list[model_pb2.ModelVersion]

    def start_inference(self, memory_budget_bytes: int, name: str) -> RunningInference:
        """Another inference service on the same registry (its own data dir and budget)."""
        return self.loop.run(
            start_inference(
                registry_address=self.registry.address,
                data_dir=self.data_dir / name,
                memory_budget_bytes=memory_budget_bytes,
            )
        )


def stubs(address: str) -> tuple[grpc.Channel, Any, Any]:
    channel = grpc.insecure_channel(address)
    new_stub: Any = inference_service_pb2_grpc.InferenceServiceStub
    new_oip: Any = oip_grpc_service_pb2_grpc.GRPCInferenceServiceStub
    return channel, new_stub(channel), new_oip(channel)


@pytest.fixture(scope="session")
def inference_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceStack]:
    data_dir = tmp_path_factory.mktemp("inference-stack")
    model_dirs = [
        make_model_dir(data_dir / "model-1", seed=1),
        make_model_dir(data_dir / "model-2", seed=2),
    ]
    loop = LoopThread()
    registry = loop.run(start_registry(data_dir=data_dir / "registry"))
    registry_channel = grpc.insecure_channel(registry.address)
    new_registry: Any = registry_service_pb2_grpc.RegistryServiceStub
    registry_stub = new_registry(registry_channel)
    registry_stub.CreateModel(rpb.CreateModelRequest(model_id=MODEL))
    versions = [
        register_model(registry_stub, model_dirs[0], MODEL, ("candidate",)),
        register_model(registry_stub, model_dirs[1], MODEL),
    ]
    inference = loop.run(
        start_inference(registry_address=registry.address, data_dir=data_dir / "inference")
    )
    channel, stub, oip_stub = stubs(inference.address)
    yield InferenceStack(
        loop,
        registry,
        inference,
        registry_stub,
        stub,
        oip_stub,
        data_dir,
        model_dirs,
        versions,
    )
    channel.close()
    loop.run(inference.stop(0))
    loop.run(registry.stop(0))
    registry_channel.close()
    loop.close()
