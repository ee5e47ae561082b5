"""A sweep that evaluates its best trial through the inference service when it ends, over the
main job's three real services: only the best trial's version is evaluated, with the base job's
completion-evaluation settings, and the sweep names the evaluation."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from tests.inference.conftest import JAX_WARNINGS
from tests.main_job import main_job_services
from tests.training.conftest import import_dataset
from tests.training.helpers import tiny_job
from tunix_rt.v1 import (
    inference_pb2,
    registry_service_pb2_grpc,
    run_pb2,
    sweep_pb2,
    training_job_pb2,
    training_service_pb2_grpc,
)
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import training_service_pb2 as tpb

pytestmark = JAX_WARNINGS
P = sweep_pb2.SweepParameter


def test_the_best_trial_alone_is_evaluated_when_the_sweep_ends(tmp_path: Path) -> None:
    with main_job_services(tmp_path) as services:
        registry_channel = grpc.insecure_channel(services.registry)
        training_channel = grpc.insecure_channel(services.training)
        registry = registry_service_pb2_grpc.RegistryServiceStub(registry_channel)  # type: ignore[no-untyped-call]
        training = training_service_pb2_grpc.TrainingServiceStub(training_channel)  # type: ignore[no-untyped-call]
        dataset = import_dataset(registry, "mini")
        base = tiny_job(dataset, max_steps=4)
        base.completion_evaluation.CopyFrom(
            training_job_pb2.CompletionEvaluation(
                max_items=4, sampling=inference_pb2.SamplingParams(max_new_tokens=8)
            )
        )
        rates = struct_pb2.ListValue()
        rates.extend([1e-4, 3e-3])
        sweep = sweep_pb2.Sweep(
            base_training_job=base,
            search_space=[P(name="lr", categorical=P.Categorical(values=rates.values))],
            objective=sweep_pb2.SweepObjective(
                metric="eval_loss", direction=sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE
            ),
            max_trials=2,
            algorithm=sweep_pb2.SWEEP_ALGORITHM_GRID,
            evaluate_best=True,
        )
        name = training.CreateSweep(tpb.CreateSweepRequest(sweep=sweep)).sweep.name
        deadline = time.monotonic() + 240
        while (done := training.GetSweep(tpb.GetSweepRequest(name=name)).sweep).state in (
            run_pb2.RUN_STATE_QUEUED,
            run_pb2.RUN_STATE_RUNNING,
        ):
            assert time.monotonic() < deadline, "the sweep did not end"
            time.sleep(0.5)
        assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
        assert done.best_evaluation, done
        for trial in done.trials:
            evaluations = registry.ListEvaluations(
                rpb.ListEvaluationsRequest(model=trial.model_version)
            ).evaluations
            if trial.number == done.best_trial.number:
                assert [e.name for e in evaluations] == [done.best_evaluation]
                assert evaluations[0].item_count == 4
            else:
                assert not evaluations
        registry_channel.close()
        training_channel.close()
