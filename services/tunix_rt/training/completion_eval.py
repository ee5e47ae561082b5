"""Evaluation on completion: once a job's version is registered, the training service asks the
inference service to Evaluate it on the job's dataset split and follows the progress.

A failed evaluation never fails the job: its error is kept beside the job's result instead.
The inference service is dialled through common.outgoing with the training service's own token
and TLS CA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format

from tunix_rt.common import outgoing
from tunix_rt.training.live_job import LiveJob
from tunix_rt.v1 import (
    inference_pb2,
    inference_service_pb2,
    inference_service_pb2_grpc,
    training_job_pb2,
)

INFERENCE_ENV = "TUNIX_RT_INFERENCE"
# Progress lines in the job's log at most this often (seconds).
LOG_INTERVAL_S = 2.0
# An evaluation that takes longer than this has hung.
DEADLINE_S = 3600.0


@dataclass(frozen=True)
class Outcome:
    """The recorded evaluation's name, or the error (gRPC code name, message)."""

    evaluation: str = ""
    error: tuple[str, str] | None = None


def request_of(
    settings: dict[str, Any], model_version: str, dataset: str, job_id: str
) -> inference_service_pb2.EvaluateRequest:
    """The Evaluate request for a job's `completion_evaluation` settings (the message's JSON)."""
    fields = {k: v for k, v in settings.items() if k != "present"}
    ce = json_format.ParseDict(fields, _completion_message(), ignore_unknown_fields=True)
    request = inference_service_pb2.EvaluateRequest(
        model=model_version,
        source=inference_pb2.ItemSource(
            dataset=inference_pb2.DatasetSplitSource(dataset=dataset, split=ce.split),
            max_items=ce.max_items,
        ),
        metrics=list(ce.metrics),
        sampling=ce.sampling,
        # One evaluation per job, even when the service restarts and evaluates again.
        request_id=f"completion-{job_id}",
    )
    if ce.HasField("regression_gate"):
        request.regression_gate.CopyFrom(ce.regression_gate)
    return request


def _completion_message() -> training_job_pb2.CompletionEvaluation:
    return training_job_pb2.CompletionEvaluation()


async def evaluate(
    inference: outgoing.OutgoingSettings,
    request: inference_service_pb2.EvaluateRequest,
    log: Callable[[str], None],
) -> Outcome:
    """Runs the evaluation on the `inference` service, logging progress; never raises for a
    failed evaluation."""
    channel = outgoing.aio_channel(inference, outgoing.INFERENCE)
    try:
        new_stub: Any = inference_service_pb2_grpc.InferenceServiceStub
        stub = new_stub(channel)
        last = 0.0
        async for response in stub.Evaluate(request, timeout=DEADLINE_S):
            kind = response.WhichOneof("response")
            if kind == "result":
                result = response.result
                accuracy = result.evaluation.metrics.get("answer_accuracy", 0.0)
                gate = ""
                if result.HasField("regression_gate"):
                    passed = result.regression_gate.passed
                    gate = f"; regression gate {'passed' if passed else 'FAILED'}"
                log(
                    f"evaluated {request.model}: answer_accuracy={accuracy:.4f} on "
                    f"{result.evaluation.item_count} items ({result.evaluation.name}){gate}"
                )
                return Outcome(evaluation=result.evaluation.name)
            if kind == "progress" and time.monotonic() - last >= LOG_INTERVAL_S:
                last = time.monotonic()
                p = response.progress
                accuracy = p.metrics.get("answer_accuracy")
                tail = f" answer_accuracy={accuracy:.4f}" if accuracy is not None else ""
                log(
                    f"evaluating {request.model}: {p.completed_count}/{p.total_count} "
                    f"({inference_pb2.EvaluationPhase.Name(p.phase)}){tail}"
                )
        return Outcome(error=("UNKNOWN", "the evaluation ended without a result"))
    except grpc.RpcError as err:
        code, details = outgoing.failure(err)
        log(f"evaluation of {request.model} failed: {code}: {details}")
        return Outcome(error=(code, details))
    finally:
        await channel.close()


async def evaluate_job(
    live: LiveJob, registry_settings: outgoing.OutgoingSettings, default_address: str
) -> None:
    """Evaluates the job's registered version when it asked for it (at `default_address` unless
    its settings name one); the job still succeeds when the evaluation fails (its error is kept
    in the result)."""
    settings = live.spec.completion_evaluation
    if not settings:
        return
    live.phase = "EVALUATING_MODEL"
    address = str(settings.get("inference_address") or default_address)
    request = request_of(settings, live.registered_version, live.spec.dataset, live.job_id)
    live.emit_log(f"evaluating {live.registered_version} on {live.spec.dataset}")
    outcome = await evaluate(
        # The inference service is dialled with the token and TLS CA of the registry's link.
        registry_settings.to(address),
        request,
        live.emit_log,
    )
    live.evaluation, live.evaluation_error = outcome.evaluation, outcome.error
