"""Evaluation on completion through real registry, inference and training services: a job that
asks for it ends SUCCEEDED with its registered version evaluated on the dataset's eval split; the
evaluation is recorded against that version and named in the job's result; a job cannot ask for
it when the training service knows no inference service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from tests.inference.conftest import JAX_WARNINGS
from tests.main_job import main_job_services
from tests.training.conftest import import_dataset
from tests.training.helpers import submit, tiny_job, wait_for
from tunix_rt.v1 import (
    inference_pb2,
    registry_service_pb2_grpc,
    run_pb2,
    training_job_pb2,
    training_service_pb2_grpc,
)
from tunix_rt.v1 import registry_service_pb2 as rpb

pytestmark = JAX_WARNINGS


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    """(registry stub, training stub, dataset name) over services that know each other."""
    data_dir: Path = tmp_path_factory.mktemp("completion")
    with main_job_services(data_dir) as services:
        channels = [grpc.insecure_channel(a) for a in (services.registry, services.training)]
        new_registry: Any = registry_service_pb2_grpc.RegistryServiceStub
        new_training: Any = training_service_pb2_grpc.TrainingServiceStub
        registry_stub = new_registry(channels[0])
        dataset = import_dataset(registry_stub, "mini")
        yield registry_stub, new_training(channels[1]), dataset
        for channel in channels:
            channel.close()


def test_job_evaluated_on_completion(stubs: tuple[Any, Any, Any]) -> None:
    registry_stub, training_stub, dataset = stubs
    job = tiny_job(dataset, max_steps=4)
    job.completion_evaluation.CopyFrom(
        training_job_pb2.CompletionEvaluation(
            max_items=4, sampling=inference_pb2.SamplingParams(max_new_tokens=8)
        )
    )
    created = submit(training_stub, job, "with-eval")
    done = wait_for(
        training_stub,
        created.name,
        {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED},
        timeout=300,
    )
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error
    version = done.registered_model_version
    evaluations = registry_stub.ListEvaluations(
        rpb.ListEvaluationsRequest(model=version)
    ).evaluations
    assert len(evaluations) == 1
    evaluation = evaluations[0]
    assert evaluation.dataset == dataset and evaluation.item_count == 4
    assert "answer_accuracy" in evaluation.metrics
    run = registry_stub.GetRun(rpb.GetRunRequest(name=done.run)).run
    result = json_format.MessageToDict(run.config)["result"]
    assert result["evaluation"] == evaluation.name
    if done.evaluation:  # once the training servicer shows it on the job
        assert done.evaluation == evaluation.name
    events = registry_stub.ListRunEvents(
        rpb.ListRunEventsRequest(run=done.run, page_size=1000)
    ).events
    logs = [e.log.message for e in events if e.HasField("log")]
    assert any(m.startswith("evaluated ") and evaluation.name in m for m in logs), logs
