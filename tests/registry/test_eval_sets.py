"""Eval sets through the real server: create from the seed eval_v2 rows, get, list, page items,
delete; evaluations on an eval set with their regression gate outcome and leaderboard."""

from __future__ import annotations

from typing import Any

import grpc

from tests.registry.helpers import (
    Stub,
    bad_request_fields,
    read_rows,
    rpc_error,
    seed_path,
    struct,
    unique,
)
from tunix_rt.v1 import eval_set_pb2, evaluation_pb2, model_pb2, regression_gate_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

EVAL_V2 = "evalsets-eval_v2.jsonl"


def items_from_rows(rows: list[dict[str, Any]]) -> list[eval_set_pb2.EvalSetItem]:
    return [
        eval_set_pb2.EvalSetItem(
            item_id=r["id"],
            prompt=r["prompt"],
            expected_answer=r["expected_answer"],
            meta=struct({k: r[k] for k in ("section", "category", "difficulty")}),
        )
        for r in rows
    ]


def create(stub: Stub, rows: list[dict[str, Any]], **kw: Any) -> eval_set_pb2.EvalSet:
    eval_set: eval_set_pb2.EvalSet = stub.CreateEvalSet(
        pb.CreateEvalSetRequest(
            eval_set_id=kw.pop("eval_set_id", unique("es")), items=items_from_rows(rows), **kw
        )
    ).eval_set
    return eval_set


def test_create_get_list_and_page_items(stub: Stub) -> None:
    rows = read_rows(seed_path(EVAL_V2))
    eval_set = create(stub, rows, eval_set=eval_set_pb2.EvalSet(description="v2"))
    assert eval_set.name.startswith("evalSets/")
    assert eval_set.item_count == len(rows) and eval_set.description == "v2"
    assert sum(v for k, v in eval_set.counts.items() if k.startswith("category=")) == len(rows)
    assert stub.GetEvalSet(pb.GetEvalSetRequest(name=eval_set.name)).eval_set == eval_set
    listed = stub.ListEvalSets(pb.ListEvalSetsRequest(page_size=1000)).eval_sets
    assert eval_set.name in [e.name for e in listed]

    got: list[eval_set_pb2.EvalSetItem] = []
    token = ""
    while True:
        page = stub.ListEvalSetItems(
            pb.ListEvalSetItemsRequest(eval_set=eval_set.name, page_size=30, page_token=token)
        )
        got += page.items
        token = page.next_page_token
        if not token:
            break
    assert [i.item_id for i in got] == [r["id"] for r in rows]
    assert got[0].expected_answer == rows[0]["expected_answer"]
    assert dict(got[0].meta)["category"] == rows[0]["category"]


def test_request_id_is_idempotent_and_ids_are_unique(stub: Stub) -> None:
    rows = read_rows(seed_path(EVAL_V2))[:3]
    eval_set_id, key = unique("es"), unique("req")
    first = create(stub, rows, eval_set_id=eval_set_id, request_id=key)
    assert create(stub, rows, eval_set_id=eval_set_id, request_id=key) == first
    rpc_error(grpc.StatusCode.ALREADY_EXISTS, lambda: create(stub, rows, eval_set_id=eval_set_id))


def test_bad_eval_sets_name_the_field(stub: Stub) -> None:
    rows = read_rows(seed_path(EVAL_V2))[:2]
    rows[1] = {**rows[1], "prompt": " ", "id": rows[0]["id"]}
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: create(stub, rows))
    assert {"items[1].prompt", "items[1].item_id"} <= set(bad_request_fields(err))
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: create(stub, rows[:1], eval_set_id="../x")
    )
    assert bad_request_fields(err) == ["eval_set_id"]
    rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateEvalSet(pb.CreateEvalSetRequest())
    )
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetEvalSet(pb.GetEvalSetRequest(name="evalSets/nope")),
    )
    rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.GetEvalSet(pb.GetEvalSetRequest(name="datasets/nope")),
    )


def test_evaluations_on_an_eval_set_keep_their_gate(stub: Stub, artifact: str) -> None:
    rows = read_rows(seed_path(EVAL_V2))[:2]
    eval_set = create(stub, rows)
    model = f"models/{unique('m')}"
    version = stub.CreateModelVersion(
        pb.CreateModelVersionRequest(
            parent=model, model_version=model_pb2.ModelVersion(artifact=artifact)
        )
    ).model_version.name
    gate = regression_gate_pb2.RegressionGateResult(
        passed=False,
        baseline_model_version=version,
        comparisons=[
            regression_gate_pb2.MetricComparison(
                metric="answer_accuracy", baseline_value=0.5, regression=0.5, gated=True
            )
        ],
    )
    evaluation = stub.CreateEvaluation(
        pb.CreateEvaluationRequest(
            evaluation=evaluation_pb2.Evaluation(
                model_version=version,
                dataset=eval_set.name,
                metrics={"answer_accuracy": 0.0},
                config=struct({"max_new_tokens": 8}),
                regression_gate=gate,
            ),
            items=[evaluation_pb2.EvaluationItem(item_id=r["id"]) for r in rows],
        )
    ).evaluation
    assert evaluation.dataset == eval_set.name
    assert evaluation.regression_gate == gate
    assert dict(evaluation.config) == {"max_new_tokens": 8}
    fetched = stub.GetEvaluation(pb.GetEvaluationRequest(name=evaluation.name)).evaluation
    assert fetched == evaluation
    listed = stub.ListEvaluations(pb.ListEvaluationsRequest(dataset=eval_set.name)).evaluations
    assert [e.name for e in listed] == [evaluation.name]
    board = stub.GetLeaderboard(
        pb.GetLeaderboardRequest(dataset=eval_set.name, metric="answer_accuracy")
    ).entries
    assert [e.evaluation for e in board] == [evaluation.name]

    err = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stub.DeleteEvalSet(pb.DeleteEvalSetRequest(name=eval_set.name)),
    )
    assert "evaluation" in (err.details() or "")


def test_delete_eval_set(stub: Stub) -> None:
    eval_set = create(stub, read_rows(seed_path(EVAL_V2))[:1])
    stub.DeleteEvalSet(pb.DeleteEvalSetRequest(name=eval_set.name))
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetEvalSet(pb.GetEvalSetRequest(name=eval_set.name)),
    )
