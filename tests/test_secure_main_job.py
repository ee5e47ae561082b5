"""The main job with a bearer token and TLS on all three services (issue 9): traces imported from
the shipped training set, a dataset, a tiny model trained and registered, evaluated on completion
through the inference service, and text generated from it. The services dial each other through
common.outgoing with their own token and CA, the training worker process included; a caller
without the token is refused everywhere."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from tests.inference.conftest import JAX_WARNINGS
from tests.main_job import TRAIN, main_job_services, secure_config
from tests.training.conftest import import_dataset
from tests.training.helpers import submit, tiny_job, wait_for
from tunix_rt.v1 import (
    inference_pb2,
    inference_service_pb2_grpc,
    registry_service_pb2_grpc,
    run_pb2,
    training_job_pb2,
    training_service_pb2_grpc,
)
from tunix_rt.v1 import inference_service_pb2 as ipb
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import training_service_pb2 as tpb

pytestmark = JAX_WARNINGS

TOKEN = "main-job-token"
TRACES = 48  # a few dozen: enough for train and eval splits, quick to import


@dataclass
class Secure:
    """Generated stubs of the three services over TLS channels that carry the token."""

    registry: Any
    training: Any
    inference: Any
    dataset: str
    # Each service's address, and the CA, for calls without the token.
    addresses: dict[str, str]
    ca: bytes


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    data_dir = tmp_path_factory.mktemp("secure")
    tls = secure_config(data_dir / "tls", TOKEN)
    with main_job_services(data_dir, config=tls.config) as services:
        ca = tls.ca_file.read_bytes()
        credentials = tls.credentials()
        addresses = asdict(services)
        channels = {name: grpc.secure_channel(a, credentials) for name, a in addresses.items()}
        new_registry: Any = registry_service_pb2_grpc.RegistryServiceStub
        new_training: Any = training_service_pb2_grpc.TrainingServiceStub
        new_inference: Any = inference_service_pb2_grpc.InferenceServiceStub
        registry_stub = new_registry(channels["registry"])
        traces = data_dir / "traces.jsonl"
        with TRAIN.open() as lines:
            traces.write_text("".join(itertools.islice(lines, TRACES)))
        yield Secure(
            registry_stub,
            new_training(channels["training"]),
            new_inference(channels["inference"]),
            import_dataset(registry_stub, "secure", traces),
            addresses,
            ca,
        )
        for channel in channels.values():
            channel.close()


def test_a_caller_without_the_token_is_refused(secure: Secure) -> None:
    calls: list[tuple[str, Any, str, Any]] = [
        (
            "registry",
            registry_service_pb2_grpc.RegistryServiceStub,
            "GetDataset",
            rpb.GetDatasetRequest(name=secure.dataset),
        ),
        (
            "training",
            training_service_pb2_grpc.TrainingServiceStub,
            "ListTrainingJobs",
            tpb.ListTrainingJobsRequest(),
        ),
        (
            "inference",
            inference_service_pb2_grpc.InferenceServiceStub,
            "ListLoadedModels",
            ipb.ListLoadedModelsRequest(),
        ),
    ]
    tls_only = grpc.ssl_channel_credentials(root_certificates=secure.ca)
    for service, new_stub, method, request in calls:
        channel = grpc.secure_channel(secure.addresses[service], tls_only)
        with channel, pytest.raises(grpc.RpcError) as caught:
            getattr(new_stub(channel), method)(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, service


def test_the_main_job_runs_with_token_and_tls(secure: Secure) -> None:
    job = tiny_job(secure.dataset, max_steps=4)
    job.completion_evaluation.CopyFrom(
        training_job_pb2.CompletionEvaluation(
            max_items=4, sampling=inference_pb2.SamplingParams(max_new_tokens=8)
        )
    )
    created = submit(secure.training, job, "secure-main")
    done = wait_for(
        secure.training,
        created.name,
        {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED},
        timeout=300,
    )
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error

    # The worker registered the model through its own TLS channel with the token.
    version = secure.registry.GetModelVersion(
        rpb.GetModelVersionRequest(name=done.registered_model_version)
    ).model_version
    assert version.source_run == done.run and version.artifact

    # The training service had the inference service evaluate it, which recorded the result.
    run = secure.registry.GetRun(rpb.GetRunRequest(name=done.run)).run
    result = json_format.MessageToDict(run.config)["result"]
    assert "evaluation_error" not in result, result
    evaluations = secure.registry.ListEvaluations(
        rpb.ListEvaluationsRequest(model=version.name)
    ).evaluations
    assert [e.name for e in evaluations] == [result["evaluation"]]
    assert evaluations[0].dataset == secure.dataset and evaluations[0].item_count == 4

    generated = secure.inference.Generate(
        ipb.GenerateRequest(
            model=version.name,
            prompt="What is 2 + 3?",
            sampling=inference_pb2.SamplingParams(max_new_tokens=8),
        ),
        timeout=300,
    )
    assert generated.model_version == version.name
    assert generated.summary.usage.completion_tokens > 0
