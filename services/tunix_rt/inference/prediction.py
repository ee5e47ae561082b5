"""Predicting the items of a source, and BatchPredict, which streams the predictions.

`predict_one` renders, generates and scores one item; `predict_all` keeps many items in flight
at once from a thread pool: the engine batches concurrent requests, which is where the
throughput comes from. Evaluate (`evaluation`) runs its passes over `predict_all` too.

The servicer calls `batch_predict` on a worker thread with a call context it has read on the
event loop (see `servicer.CallContext`); this module only asks it whether the caller is still
there and for its metadata.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from tunix_rt.common.errors import InvalidArgument, TunixError
from tunix_rt.common.rendering import render_prompt
from tunix_rt.inference import eval_items, eval_metrics, generation, validation
from tunix_rt.inference.engines.base import Finished, Sampling
from tunix_rt.v1 import evaluation_pb2, inference_pb2, inference_service_pb2

# Items in flight at once: enough for the engine to batch, few enough to keep latency sane.
CONCURRENCY = 16
# The status code of an item whose request the service refused (a prompt too long, say).
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


def cancelled_of(context: Any) -> Cancelled:
    """Whether the caller of `context` went away (cancel, deadline, server stop)."""
    is_active = getattr(context, "is_active", None)
    if callable(is_active):
        return lambda: not is_active()
    done = getattr(context, "done", None)
    if callable(done):
        return lambda: bool(done())
    return lambda: False


def caller_metadata(context: Any) -> Any:
    """Metadata to pass on to the registry (the caller's auth token, when there is one)."""
    invocation = getattr(context, "invocation_metadata", None)
    if not callable(invocation):
        return None
    held = invocation() or ()
    return [(k, v) for k, v in held if k == "authorization"] or None


def sampling_of(params: inference_pb2.SamplingParams, field: str = "sampling") -> Sampling:
    """The validated sampling of a BatchPredict or Evaluate request."""
    # An evaluation is a measurement: without a seed it uses 0, so a repeat (or the baseline of a
    # gate) samples alike instead of with a random seed.
    fixed = inference_pb2.SamplingParams()
    fixed.CopyFrom(params)
    if not fixed.HasField("seed"):
        fixed.seed = 0
    sampling, _ = validation.sampling_from_proto(fixed, field)
    return sampling


def _generate(
    served: Any, item: eval_items.Item, sampling: Sampling, stop: Cancelled
) -> tuple[Finished | None, status_pb2.Status | None]:
    """The item's generation (None when it did not finish) and its failure, if it failed."""
    finished: Finished | None = None
    try:
        ids = generation.encode_prompt(served, render_prompt(item.prompt, served.chat_template))
        for event in served.engine.generate(ids, sampling, stop):
            if isinstance(event, Finished):
                finished = event
    except TunixError as err:
        code = _CODES.get(err.reason, code_pb2.INVALID_ARGUMENT)
        return finished, status_pb2.Status(code=code, message=err.message)
    except Exception as err:  # an engine failure fails this item; the other items go on
        message = f"generation failed: {type(err).__name__}: {err}"
        return finished, status_pb2.Status(code=code_pb2.INTERNAL, message=message)
    return finished, None


def predict_one(
    served: Any, item: eval_items.Item, sampling: Sampling, metrics: Sequence[str], stop: Cancelled
) -> Outcome:
    """Renders, generates and scores one item; an item that cannot be predicted is an Outcome
    with an error (it counts as incorrect), never an exception."""
    meta = struct_pb2.Struct()
    meta.update(item.meta)
    item_pb = evaluation_pb2.EvaluationItem(
        item_id=item.item_id, prompt=item.prompt, expected=item.expected, meta=meta
    )
    prediction = inference_pb2.Prediction(index=item.index)
    started = time.monotonic()
    finished, error = _generate(served, item, sampling, stop)
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
        if error is None:  # it neither finished nor failed: the caller went away
            error = status_pb2.Status(code=code_pb2.CANCELLED, message="generation was cancelled")
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
        prediction.summary.CopyFrom(generation.summary(finished, sampling.seed))
    if error is not None:
        prediction.error.CopyFrom(error)
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
            pool.submit(predict_one, served, item, sampling, metrics, stop) for item in items
        }
        for future in cf.as_completed(futures):
            if cancelled():
                return
            yield future.result()
    finally:
        stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)


def batch_predict(
    store: Any,
    registry_stub: Any,
    request: inference_service_pb2.BatchPredictRequest,
    context: Any,
) -> Iterator[inference_service_pb2.BatchPredictResponse]:
    """BatchPredict: streams one prediction per item, in the order they finish."""
    if not request.model:
        raise InvalidArgument.field("model", "is required")
    sampling = sampling_of(request.sampling)
    source = eval_items.load(registry_stub, request.source, caller_metadata(context))
    cancelled = cancelled_of(context)
    with store.acquire(request.model) as served:
        total = len(source.items)
        for outcome in predict_all(served, source.items, sampling, (), cancelled):
            yield inference_service_pb2.BatchPredictResponse(
                prediction=outcome.prediction,
                total_count=total,
                model_version=served.model_version,
            )
