"""BatchPredict and Evaluate: predict every item of a dataset split or eval set, score the
answers, stream progress, record the evaluation in the registry, and apply a regression gate.

The servicer calls `batch_predict` and `evaluate` on a worker thread; both are generators of
response messages. Items are submitted to the engine from a thread pool so that many are in
flight at once: the engine batches concurrent requests, which is where the throughput comes from.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2
from google.rpc import code_pb2, status_pb2

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument, TunixError
from tunix_rt.common.rendering import render_prompt
from tunix_rt.inference import eval_items, eval_metrics, gate, validation
from tunix_rt.inference.engines.base import Finished, Sampling
from tunix_rt.inference.registry_errors import registry_call
from tunix_rt.v1 import (
    evaluation_pb2,
    inference_pb2,
    inference_service_pb2,
    regression_gate_pb2,
)
from tunix_rt.v1 import registry_service_pb2 as rpb

# Items in flight at once: enough for the engine to batch, few enough to keep latency sane.
CONCURRENCY = 16
# Progress messages at most this often (seconds).
PROGRESS_INTERVAL_S = 0.25
MAX_REQUEST_ID = 128
REGISTRY_DEADLINE_S = 120.0
_FINISH = {
    "length": inference_pb2.FINISH_REASON_LENGTH,
    "stop": inference_pb2.FINISH_REASON_STOP,
    "end_of_sequence": inference_pb2.FINISH_REASON_END_OF_SEQUENCE,
    "context_length": inference_pb2.FINISH_REASON_CONTEXT_LENGTH,
}
_CODES = {
    "INVALID_ARGUMENT": code_pb2.INVALID_ARGUMENT,
    "NOT_FOUND": code_pb2.NOT_FOUND,
    "FAILED_PRECONDITION": code_pb2.FAILED_PRECONDITION,
    "RESOURCE_EXHAUSTED": code_pb2.RESOURCE_EXHAUSTED,
}

Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class Outcome:
    """One item predicted (or failed) and scored."""

    item: eval_items.Item
    prediction: inference_pb2.Prediction
    scored: eval_metrics.Scored


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(max(0.0, seconds) * 1e9))
    return value


def _cancelled_of(context: Any) -> Cancelled:
    is_active = getattr(context, "is_active", None)
    if callable(is_active):
        return lambda: not is_active()
    done = getattr(context, "done", None)
    if callable(done):
        return lambda: bool(done())
    return lambda: False


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def _metadata(context: Any) -> Any:
    """Metadata to pass on to the registry (the caller's auth token, when there is one)."""
    invocation = getattr(context, "invocation_metadata", None)
    if not callable(invocation):
        return None
    held = invocation() or ()
    return [(k, v) for k, v in held if k == "authorization"] or None


def _predict_one(
    served: Any, item: eval_items.Item, sampling: Sampling, metrics: Sequence[str], stop: Cancelled
) -> Outcome:
    """Renders, generates and scores one item; an item that cannot be predicted is an Outcome
    with an error (it counts as incorrect), never an exception."""
    item_pb = evaluation_pb2.EvaluationItem(
        item_id=item.item_id,
        prompt=item.prompt,
        expected=item.expected,
        meta=_struct(item.meta),
    )
    prediction = inference_pb2.Prediction(index=item.index)
    started = time.monotonic()
    finished: Finished | None = None
    try:
        ids = served.engine.encode_prompt(render_prompt(item.prompt, served.chat_template))
        validation.check_prompt_tokens(len(ids), served.context_length, "prompt")
        for event in served.engine.generate(ids, sampling, stop):
            if isinstance(event, Finished):
                finished = event
    except TunixError as err:
        prediction.error.CopyFrom(
            status_pb2.Status(
                code=_CODES.get(err.reason, code_pb2.INVALID_ARGUMENT), message=err.message
            )
        )
    except Exception as err:  # an engine failure fails this item; the other items go on
        prediction.error.CopyFrom(
            status_pb2.Status(
                code=code_pb2.INTERNAL, message=f"generation failed: {type(err).__name__}: {err}"
            )
        )
    if finished is None:
        scored = eval_metrics.score(
            "",
            item.expected,
            metrics,
            meta=item.meta,
            completion_tokens=0,
            latency_s=0.0,
            failed=True,
        )
        if not prediction.HasField("error"):
            prediction.error.CopyFrom(
                status_pb2.Status(code=code_pb2.CANCELLED, message="generation was cancelled")
            )
    else:
        scored = eval_metrics.score(
            finished.text,
            item.expected,
            metrics,
            meta=item.meta,
            completion_tokens=finished.completion_tokens,
            latency_s=time.monotonic() - started,
        )
        item_pb.prediction = finished.text
        prediction.summary.CopyFrom(
            inference_pb2.GenerationSummary(
                finish_reason=_FINISH.get(
                    finished.finish_reason, inference_pb2.FINISH_REASON_UNSPECIFIED
                ),
                usage=inference_pb2.TokenUsage(
                    prompt_tokens=finished.prompt_tokens,
                    completion_tokens=finished.completion_tokens,
                    reasoning_tokens=finished.reasoning_tokens,
                    total_tokens=finished.prompt_tokens + finished.completion_tokens,
                ),
                answer=scored.extracted or "",
                seed=sampling.seed,
                time_to_first_token=_duration(finished.time_to_first_token),
                total_time=_duration(finished.total_time),
            )
        )
    item_pb.extracted_answer = scored.extracted or ""
    item_pb.correct = scored.correct
    item_pb.scores.update(scored.scores)
    prediction.item.CopyFrom(item_pb)
    return Outcome(item, prediction, scored)


def predict_all(
    served: Any,
    items: Sequence[eval_items.Item],
    sampling: Sampling,
    metrics: Sequence[str],
    cancelled: Cancelled,
    concurrency: int = CONCURRENCY,
) -> Iterator[Outcome]:
    """Predicts every item with `concurrency` in flight; yields outcomes as they finish.
    Stops early (the rest never start) once `cancelled()` is true."""
    # Set when this generator ends early (cancel, error, or the consumer closing it), so that
    # in-flight generations stop at once instead of holding the pool's shutdown.
    stopping = threading.Event()

    def stop() -> bool:
        return stopping.is_set() or cancelled()

    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="predict")
    try:
        futures = {
            pool.submit(_predict_one, served, item, sampling, metrics, stop) for item in items
        }
        for future in cf.as_completed(futures):
            if cancelled():
                return
            yield future.result()
    finally:
        stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _sampling(params: inference_pb2.SamplingParams, field: str = "sampling") -> Sampling:
    # An evaluation is a measurement: without a seed it uses 0, so a repeat (or the baseline of a
    # gate) samples alike instead of with a random seed.
    fixed = inference_pb2.SamplingParams()
    fixed.CopyFrom(params)
    if not fixed.HasField("seed"):
        fixed.seed = 0
    sampling, _ = validation.sampling_from_proto(fixed, field)
    return sampling


# BatchPredict.


def batch_predict(
    store: Any,
    registry_stub: Any,
    request: inference_service_pb2.BatchPredictRequest,
    context: Any,
) -> Iterator[inference_service_pb2.BatchPredictResponse]:
    """Streams one prediction per item, in the order they finish."""
    if not request.model:
        raise InvalidArgument.field("model", "is required")
    sampling = _sampling(request.sampling)
    source = eval_items.load(registry_stub, request.source, _metadata(context))
    cancelled = _cancelled_of(context)
    with store.acquire(request.model) as served:
        total = len(source.items)
        for outcome in predict_all(served, source.items, sampling, (), cancelled):
            yield inference_service_pb2.BatchPredictResponse(
                prediction=outcome.prediction,
                total_count=total,
                model_version=served.model_version,
            )


# Evaluate.


@dataclass
class _Run:
    """What one evaluation pass produced."""

    model_version: str
    metrics: dict[str, float]
    outcomes: list[Outcome]
    elapsed_s: float


def _progress(
    done: int,
    total: int,
    metrics: dict[str, float],
    elapsed: float,
    phase: int,
) -> inference_service_pb2.EvaluateResponse:
    progress = inference_pb2.EvaluationProgress(
        completed_count=done,
        total_count=total,
        metrics=metrics,
        elapsed=_duration(elapsed),
        phase=phase,  # type: ignore[arg-type]
    )
    if 0 < done < total:
        progress.estimated_time_remaining.CopyFrom(_duration(elapsed / done * (total - done)))
    elif done == total:
        progress.estimated_time_remaining.CopyFrom(_duration(0.0))
    return inference_service_pb2.EvaluateResponse(progress=progress)


def _run(
    served: Any,
    items: Sequence[eval_items.Item],
    sampling: Sampling,
    metrics: Sequence[str],
    cancelled: Cancelled,
    phase: int,
    include_items: bool,
) -> Generator[inference_service_pb2.EvaluateResponse, None, _Run]:
    """One pass over the items, streaming progress (and items); returns the pass's result."""
    started = time.monotonic()
    outcomes: list[Outcome] = []
    yield _progress(0, len(items), {}, 0.0, phase)
    last = time.monotonic()
    for outcome in predict_all(served, items, sampling, metrics, cancelled):
        outcomes.append(outcome)
        if include_items:
            yield inference_service_pb2.EvaluateResponse(item=outcome.prediction.item)
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL_S or len(outcomes) == len(items):
            last = now
            running = eval_metrics.aggregate((o.scored for o in outcomes), metrics, now - started)
            yield _progress(len(outcomes), len(items), running, now - started, phase)
    if cancelled():
        raise _Cancelled()
    elapsed = time.monotonic() - started
    outcomes.sort(key=lambda o: o.item.index)
    final = eval_metrics.aggregate((o.scored for o in outcomes), metrics, elapsed)
    if not final:  # an empty source still records its (vacuous) accuracy
        final = {eval_metrics.ANSWER_ACCURACY: 0.0}
    return _Run(served.model_version, final, outcomes, elapsed)


class _Cancelled(Exception):
    """The caller went away: stop without recording anything."""


def _config(
    request: inference_service_pb2.EvaluateRequest,
    sampling: Sampling,
    metrics: Sequence[str],
    reference: str,
    item_count: int,
) -> dict[str, Any]:
    """How the evaluation was made, recorded with it (also what a gate's baseline must share)."""
    return {
        "model_reference": reference,
        "metrics": list(metrics),
        "max_items": int(request.source.max_items),
        "item_count": item_count,
        "request_id": request.request_id,
        "sampling": {
            "max_new_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_k": sampling.top_k,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            "stop_sequences": list(sampling.stop),
            "max_reasoning_tokens": sampling.max_reasoning_tokens,
        },
        "scoring": "training.answers.answers_match on the first 'Answer:' line",
    }


def _record(
    registry_stub: Any,
    run: _Run,
    source: eval_items.Items,
    config: dict[str, Any],
    gate_result: regression_gate_pb2.RegressionGateResult | None,
    request_id: str,
    metadata: Any,
) -> evaluation_pb2.Evaluation:
    evaluation = evaluation_pb2.Evaluation(
        model_version=run.model_version,
        dataset=source.source,
        split=source.split,  # type: ignore[arg-type]
        metrics=run.metrics,
        config=_struct(config),
    )
    if gate_result is not None:
        evaluation.regression_gate.CopyFrom(gate_result)
    recorded: evaluation_pb2.Evaluation = registry_call(
        lambda: (
            registry_stub.CreateEvaluation(
                rpb.CreateEvaluationRequest(
                    evaluation=evaluation,
                    items=[o.prediction.item for o in run.outcomes],
                    request_id=request_id,
                ),
                timeout=REGISTRY_DEADLINE_S,
                metadata=metadata,
            ).evaluation
        ),
        source.source,
        "request_id",
    )
    return recorded


def _find_recorded(
    registry_stub: Any,
    model_version: str,
    source: str,
    predicate: Callable[[Any], bool],
    metadata: Any,
) -> evaluation_pb2.Evaluation | None:
    """The newest evaluation of `model_version` on `source` that `predicate` accepts."""
    token = ""
    for _ in range(20):  # at most 20 pages: an old evaluation is not worth a long scan
        request = rpb.ListEvaluationsRequest(
            model=model_version, dataset=source, page_size=200, page_token=token
        )
        page = registry_call(
            functools.partial(
                registry_stub.ListEvaluations,
                request,
                timeout=REGISTRY_DEADLINE_S,
                metadata=metadata,
            ),
            model_version,
            "model",
        )
        for evaluation in page.evaluations:
            if predicate(evaluation):
                found: evaluation_pb2.Evaluation = evaluation
                return found
        token = page.next_page_token
        if not token:
            return None
    return None


def _config_value(evaluation: evaluation_pb2.Evaluation, key: str) -> Any:
    return json_format.MessageToDict(evaluation.config).get(key)


def _check(request: inference_service_pb2.EvaluateRequest) -> list[str]:
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
) -> Iterator[inference_service_pb2.EvaluateResponse]:
    """Streams progress (and items), records the evaluation and ends with the result."""
    metrics = _check(request)
    sampling = _sampling(request.sampling)
    metadata = _metadata(context)
    cancelled = _cancelled_of(context)
    started = time.monotonic()
    yield _progress(0, 0, {}, 0.0, inference_pb2.EVALUATION_PHASE_LOADING)
    source = eval_items.load(registry_stub, request.source, metadata)
    total = len(source.items)
    # Resolved, not acquired: the baseline (a different version) is evaluated first, so the
    # memory budget only ever needs to hold one of the two models.
    target, _ = store.resolve(request.model)
    if not target.model_version and not request.dry_run:
        raise FailedPrecondition(
            f"{request.model!r} is a checkpoint directory, not a registered version: only "
            "a dry run can evaluate it, because an evaluation is recorded against a version",
            reason="NOT_A_REGISTERED_VERSION",
        )
    if request.request_id and not request.dry_run:
        held = _find_recorded(
            registry_stub,
            target.model_version,
            source.source,
            lambda e: _config_value(e, "request_id") == request.request_id,
            metadata,
        )
        if held is not None:
            yield inference_service_pb2.EvaluateResponse(
                result=inference_pb2.EvaluationResult(
                    evaluation=held,
                    regression_gate=held.regression_gate
                    if held.HasField("regression_gate")
                    else None,
                )
            )
            return
    config = _config(request, sampling, metrics, request.model, total)
    baseline: tuple[str, str, dict[str, float]] | None = None
    try:
        if request.HasField("regression_gate"):
            baseline = yield from _baseline(
                store, registry_stub, request, source, sampling, metrics, cancelled, metadata
            )
        with store.acquire(request.model) as served:
            run = yield from _run(
                served,
                source.items,
                sampling,
                metrics,
                cancelled,
                inference_pb2.EVALUATION_PHASE_EVALUATING,
                request.include_items,
            )
    except _Cancelled:
        return  # the caller is gone: nothing is recorded
    gate_result = None
    if baseline is not None:
        version, evaluation_name, values = baseline
        gate_result = gate.compare(request.regression_gate, values, run.metrics)
        gate_result.baseline_model_version = version
        gate_result.baseline_evaluation = evaluation_name
    errors = sum(1 for o in run.outcomes if o.prediction.HasField("error"))
    if request.dry_run:
        recorded = evaluation_pb2.Evaluation(
            model_version=run.model_version,
            dataset=source.source,
            split=source.split,  # type: ignore[arg-type]
            metrics=run.metrics,
            config=_struct(config),
            item_count=len(run.outcomes),
        )
        if gate_result is not None:
            recorded.regression_gate.CopyFrom(gate_result)
    else:
        elapsed = time.monotonic() - started
        yield _progress(
            total, total, run.metrics, elapsed, inference_pb2.EVALUATION_PHASE_RECORDING
        )
        recorded = _record(
            registry_stub, run, source, config, gate_result, request.request_id, metadata
        )
    yield inference_service_pb2.EvaluateResponse(
        result=inference_pb2.EvaluationResult(
            evaluation=recorded, regression_gate=gate_result, error_count=errors
        )
    )


def _baseline(
    store: Any,
    registry_stub: Any,
    request: inference_service_pb2.EvaluateRequest,
    source: eval_items.Items,
    sampling: Sampling,
    metrics: Sequence[str],
    cancelled: Cancelled,
    metadata: Any,
) -> Generator[inference_service_pb2.EvaluateResponse, None, tuple[str, str, dict[str, float]]]:
    """(baseline version, its evaluation's name, its metrics): a named evaluation, the newest
    usable recorded one, or a fresh evaluation of the baseline (recorded unless a dry run)."""
    spec = request.regression_gate
    gated = [t.metric for t in spec.thresholds]
    if spec.baseline_evaluation:
        name = spec.baseline_evaluation
        held = registry_call(
            lambda: (
                registry_stub.GetEvaluation(
                    rpb.GetEvaluationRequest(name=name),
                    timeout=REGISTRY_DEADLINE_S,
                    metadata=metadata,
                ).evaluation
            ),
            name,
            "regression_gate.baseline_evaluation",
        )
        return held.model_version, held.name, dict(held.metrics)
    resolved = registry_call(
        lambda: (
            registry_stub.ResolveModelVersion(
                rpb.ResolveModelVersionRequest(reference=spec.baseline),
                timeout=REGISTRY_DEADLINE_S,
                metadata=metadata,
            ).model_version
        ),
        spec.baseline,
        "regression_gate.baseline",
    )
    version = resolved.name

    wanted = _config(request, sampling, metrics, spec.baseline, len(source.items))["sampling"]

    def usable(evaluation: evaluation_pb2.Evaluation) -> bool:
        # Same items (source, split and count), the same sampling (other settings change the
        # metrics by themselves) and every gated metric present.
        return (
            evaluation.split == source.split
            and evaluation.item_count == len(source.items)
            and _config_value(evaluation, "sampling") == wanted
            and all(m in evaluation.metrics for m in gated)
        )

    held = _find_recorded(registry_stub, version, source.source, usable, metadata)
    if held is not None:
        return version, held.name, dict(held.metrics)
    baseline_metrics = list(
        dict.fromkeys(
            [
                *metrics,
                *(m.split("/", 1)[0] for m in gated if m.split("/", 1)[0] in eval_metrics.KNOWN),
            ]
        )
    )
    with store.acquire(version) as served:
        run = yield from _run(
            served,
            source.items,
            sampling,
            baseline_metrics,
            cancelled,
            inference_pb2.EVALUATION_PHASE_EVALUATING_BASELINE,
            False,
        )
    if request.dry_run:
        return version, "", run.metrics
    config = _config(request, sampling, baseline_metrics, spec.baseline, len(source.items))
    config["request_id"] = ""
    config["baseline_for"] = request.model
    recorded = _record(registry_stub, run, source, config, None, "", metadata)
    return version, recorded.name, dict(recorded.metrics)
