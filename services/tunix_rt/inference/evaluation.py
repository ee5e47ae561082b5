"""Evaluate: predict every item of a dataset split or eval set, score the answers, stream
progress, record the evaluation in the registry, and apply a regression gate.

The servicer calls `evaluate` on a worker thread; it is a generator of response messages. This
module decides the order of the steps, each of which is a module of its own: the items
(`eval_items`), predicting them (`prediction`), one pass with its progress (`eval_pass`), scores
and metrics (`eval_metrics`), the registry's records (`eval_records`) and the gate's comparison
(`gate`). A repeated request id answers with what was recorded; a gate's baseline comes first
(a named evaluation, a usable recorded one, or a fresh pass); then the candidate's pass, the
gate's verdict and the record.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument
from tunix_rt.inference import eval_items, eval_metrics, eval_pass, eval_records, gate, prediction
from tunix_rt.inference.engines.base import Sampling
from tunix_rt.v1 import (
    evaluation_pb2,
    inference_pb2,
    inference_service_pb2,
    regression_gate_pb2,
)

MAX_REQUEST_ID = 128

Response = inference_service_pb2.EvaluateResponse


@dataclass(frozen=True)
class _Job:
    """A checked Evaluate request with what each of its steps needs."""

    request: inference_service_pb2.EvaluateRequest
    metrics: list[str]
    sampling: Sampling
    source: eval_items.Items
    metadata: Any  # passed on to the registry (the caller's token)
    cancelled: prediction.Cancelled


@dataclass(frozen=True)
class _Baseline:
    """What the regression gate compares the candidate with."""

    model_version: str
    evaluation: str  # the name of its evaluation; "" for a dry run's unrecorded pass
    metrics: dict[str, float]


def _check(request: inference_service_pb2.EvaluateRequest) -> list[str]:
    """The metrics to compute; INVALID_ARGUMENT for a bad request."""
    if not request.model:
        raise InvalidArgument.field("model", "is required")
    if len(request.request_id) > MAX_REQUEST_ID:
        raise InvalidArgument.field("request_id", f"must be at most {MAX_REQUEST_ID} chars")
    metrics = eval_metrics.check_metrics(list(request.metrics))
    if request.HasField("regression_gate"):
        gate.check(request.regression_gate)
    return metrics


def evaluate(
    store: Any,
    registry_stub: Any,
    request: inference_service_pb2.EvaluateRequest,
    context: Any,
) -> Iterator[Response]:
    """Streams progress (and items), records the evaluation and ends with the result."""
    metrics = _check(request)
    sampling = prediction.sampling_of(request.sampling)
    metadata = prediction.caller_metadata(context)
    started = time.monotonic()
    yield eval_pass.progress(0, 0, {}, 0.0, inference_pb2.EVALUATION_PHASE_LOADING)
    source = eval_items.load(registry_stub, request.source, metadata)
    job = _Job(request, metrics, sampling, source, metadata, prediction.cancelled_of(context))
    # Resolved, not acquired: the baseline (a different version) is evaluated first, so the
    # memory budget only ever needs to hold one of the two models.
    target, _ = store.resolve(request.model)
    if not target.model_version and not request.dry_run:
        raise FailedPrecondition(
            f"{request.model!r} is a checkpoint directory, not a registered version: only "
            "a dry run can evaluate it, because an evaluation is recorded against a version",
            reason="NOT_A_REGISTERED_VERSION",
        )
    held = _replayed(registry_stub, job, target.model_version)
    if held is not None:
        yield held
        return
    try:
        baseline = None
        if request.HasField("regression_gate"):
            baseline = yield from _baseline(store, registry_stub, job)
        with store.acquire(request.model) as served:
            run = yield from eval_pass.run(
                served,
                source.items,
                sampling,
                metrics,
                job.cancelled,
                inference_pb2.EVALUATION_PHASE_EVALUATING,
                request.include_items,
            )
    except eval_pass.CallerGone:
        return  # the caller is gone: nothing is recorded
    yield from _finish(registry_stub, job, run, _verdict(request, baseline, run), started)


def _replayed(registry_stub: Any, job: _Job, model_version: str) -> Response | None:
    """The result recorded for this request id before, when there is one: a retried Evaluate
    answers with it instead of evaluating (and recording) again."""
    request_id = job.request.request_id
    if not request_id or job.request.dry_run:
        return None
    held = eval_records.find(
        registry_stub,
        model_version,
        job.source.source,
        lambda e: eval_records.config_value(e, "request_id") == request_id,
        job.metadata,
    )
    if held is None:
        return None
    gate_result = held.regression_gate if held.HasField("regression_gate") else None
    return Response(
        result=inference_pb2.EvaluationResult(evaluation=held, regression_gate=gate_result)
    )


def _verdict(
    request: inference_service_pb2.EvaluateRequest,
    baseline: _Baseline | None,
    run: eval_pass.Pass,
) -> regression_gate_pb2.RegressionGateResult | None:
    """The gate's outcome (None without a gate)."""
    if baseline is None:
        return None
    result = gate.compare(request.regression_gate, baseline.metrics, run.metrics)
    result.baseline_model_version = baseline.model_version
    result.baseline_evaluation = baseline.evaluation
    return result


def _finish(
    registry_stub: Any,
    job: _Job,
    run: eval_pass.Pass,
    gate_result: regression_gate_pb2.RegressionGateResult | None,
    started: float,
) -> Iterator[Response]:
    """Records the candidate's evaluation (unless a dry run) and yields the result."""
    request = job.request
    total = len(job.source.items)
    config = eval_records.run_config(request, job.sampling, job.metrics, request.model, total)
    evaluation: evaluation_pb2.Evaluation = eval_records.evaluation_of(
        run, job.source, config, gate_result
    )
    if request.dry_run:
        evaluation.item_count = len(run.outcomes)
    else:
        elapsed = time.monotonic() - started
        phase = inference_pb2.EVALUATION_PHASE_RECORDING
        yield eval_pass.progress(total, total, run.metrics, elapsed, phase)
        evaluation = eval_records.record(
            registry_stub, evaluation, run, request.request_id, job.metadata
        )
    errors = sum(1 for o in run.outcomes if o.prediction.HasField("error"))
    yield Response(
        result=inference_pb2.EvaluationResult(
            evaluation=evaluation, regression_gate=gate_result, error_count=errors
        )
    )


def _baseline(store: Any, registry_stub: Any, job: _Job) -> Generator[Response, None, _Baseline]:
    """A named evaluation, the newest usable recorded one, or a fresh evaluation of the
    baseline (recorded unless a dry run)."""
    spec = job.request.regression_gate
    if spec.baseline_evaluation:
        field = "regression_gate.baseline_evaluation"
        named = eval_records.get(registry_stub, spec.baseline_evaluation, field, job.metadata)
        return _Baseline(named.model_version, named.name, dict(named.metrics))
    version = eval_records.resolve_version(
        registry_stub, spec.baseline, "regression_gate.baseline", job.metadata
    )
    gated = [t.metric for t in spec.thresholds]
    wanted = eval_records.run_config(
        job.request, job.sampling, job.metrics, spec.baseline, len(job.source.items)
    )["sampling"]

    def usable(evaluation: evaluation_pb2.Evaluation) -> bool:
        # Same items (source, split and count), the same sampling (other settings change the
        # metrics by themselves) and every gated metric present.
        return (
            evaluation.split == job.source.split
            and evaluation.item_count == len(job.source.items)
            and eval_records.config_value(evaluation, "sampling") == wanted
            and all(m in evaluation.metrics for m in gated)
        )

    held = eval_records.find(registry_stub, version, job.source.source, usable, job.metadata)
    if held is not None:
        return _Baseline(version, held.name, dict(held.metrics))
    return (yield from _fresh_baseline(store, registry_stub, job, version, gated))


def _fresh_baseline(
    store: Any, registry_stub: Any, job: _Job, version: str, gated: list[str]
) -> Generator[Response, None, _Baseline]:
    """Evaluates the baseline version now, with every gated metric it can compute."""
    metrics = eval_metrics.with_gated(job.metrics, gated)
    with store.acquire(version) as served:
        run = yield from eval_pass.run(
            served,
            job.source.items,
            job.sampling,
            metrics,
            job.cancelled,
            inference_pb2.EVALUATION_PHASE_EVALUATING_BASELINE,
            False,
        )
    if job.request.dry_run:
        return _Baseline(version, "", run.metrics)
    reference = job.request.regression_gate.baseline
    config = eval_records.run_config(
        job.request, job.sampling, metrics, reference, len(job.source.items)
    )
    config["request_id"] = ""
    config["baseline_for"] = job.request.model
    evaluation = eval_records.evaluation_of(run, job.source, config, None)
    recorded = eval_records.record(registry_stub, evaluation, run, "", job.metadata)
    return _Baseline(version, recorded.name, dict(recorded.metrics))
