"""Evaluations in the registry, as Evaluate reads and writes them: what an evaluation records
about how it was made (`run_config`), the record of a pass, recording it, and finding recorded
ones (the repeat of a request id, a regression gate's baseline).

Every call carries the caller's metadata (its token) and fails as a domain error naming the
request field it is about (`registry_call`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2

from tunix_rt.common.outgoing import registry_call
from tunix_rt.inference import eval_items
from tunix_rt.inference.engines.base import Sampling
from tunix_rt.inference.eval_items import REGISTRY_DEADLINE_S
from tunix_rt.inference.eval_pass import Pass
from tunix_rt.v1 import evaluation_pb2, inference_service_pb2, regression_gate_pb2
from tunix_rt.v1 import registry_service_pb2 as rpb

# Pages of ListEvaluations read when looking for a recorded evaluation: an old one is not worth
# a long scan.
MAX_PAGES = 20
PAGE_SIZE = 200


def run_config(
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
        "scoring": "models.answers.answers_match on the first 'Answer:' line",
    }


def config_value(evaluation: evaluation_pb2.Evaluation, key: str) -> Any:
    """One entry of a recorded evaluation's config (None when it has none)."""
    return json_format.MessageToDict(evaluation.config).get(key)


def evaluation_of(
    run: Pass,
    source: eval_items.Items,
    config: dict[str, Any],
    gate_result: regression_gate_pb2.RegressionGateResult | None,
) -> evaluation_pb2.Evaluation:
    """The Evaluation record of a pass (before the registry names it)."""
    config_struct = struct_pb2.Struct()
    config_struct.update(config)
    evaluation = evaluation_pb2.Evaluation(
        model_version=run.model_version,
        dataset=source.source,
        split=source.split,  # type: ignore[arg-type]
        metrics=run.metrics,
        config=config_struct,
    )
    if gate_result is not None:
        evaluation.regression_gate.CopyFrom(gate_result)
    return evaluation


def _call(method: Callable[..., Any], request: Any, name: str, field: str, metadata: Any) -> Any:
    """The response of registry `method` to `request`, a failure raised as the domain error
    about `name` (blamed on request field `field`)."""
    return registry_call(
        functools.partial(method, request, timeout=REGISTRY_DEADLINE_S, metadata=metadata),
        name,
        field,
    )


def record(
    registry_stub: Any,
    evaluation: evaluation_pb2.Evaluation,
    run: Pass,
    request_id: str,
    metadata: Any,
) -> evaluation_pb2.Evaluation:
    """Records `evaluation` with the items of `run`; the registry's copy (named, counted)."""
    request = rpb.CreateEvaluationRequest(
        evaluation=evaluation,
        items=[o.prediction.item for o in run.outcomes],
        request_id=request_id,
    )
    response = _call(
        registry_stub.CreateEvaluation, request, evaluation.dataset, "request_id", metadata
    )
    recorded: evaluation_pb2.Evaluation = response.evaluation
    return recorded


def find(
    registry_stub: Any,
    model_version: str,
    source: str,
    predicate: Callable[[evaluation_pb2.Evaluation], bool],
    metadata: Any,
) -> evaluation_pb2.Evaluation | None:
    """The newest evaluation of `model_version` on `source` that `predicate` accepts."""
    token = ""
    for _ in range(MAX_PAGES):
        request = rpb.ListEvaluationsRequest(
            model=model_version, dataset=source, page_size=PAGE_SIZE, page_token=token
        )
        page = _call(registry_stub.ListEvaluations, request, model_version, "model", metadata)
        for evaluation in page.evaluations:
            if predicate(evaluation):
                found: evaluation_pb2.Evaluation = evaluation
                return found
        token = page.next_page_token
        if not token:
            return None
    return None


def get(registry_stub: Any, name: str, field: str, metadata: Any) -> evaluation_pb2.Evaluation:
    """The recorded evaluation `name`, asked for by request field `field`."""
    request = rpb.GetEvaluationRequest(name=name)
    response = _call(registry_stub.GetEvaluation, request, name, field, metadata)
    held: evaluation_pb2.Evaluation = response.evaluation
    return held


def resolve_version(registry_stub: Any, reference: str, field: str, metadata: Any) -> str:
    """The model version (its name) `reference` stands for, asked for by request field `field`."""
    request = rpb.ResolveModelVersionRequest(reference=reference)
    response = _call(registry_stub.ResolveModelVersion, request, reference, field, metadata)
    name: str = response.model_version.name
    return name
