"""Eval sets through the real server: create from rows in the original tunix-rt's eval_v2 format
(tests/fixtures), get, list, page items, delete; the shipped eval set and the fixture read by the
CLI's file reader and stored whole; evaluations on an eval set with their regression gate outcome
and leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.registry.helpers import (
    EVAL_SET_V2_FIXTURE,
    SHIPPED_EVAL_SET,
    Stub,
    bad_request_fields,
    read_rows,
    rpc_error,
    struct,
    unique,
)
from tunix_rt.client.cli.evaluate import read_eval_set_file
from tunix_rt.v1 import eval_set_pb2, evaluation_pb2, model_pb2, regression_gate_pb2
from tunix_rt.v1 import registry_service_pb2 as pb


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
    rows = read_rows(EVAL_SET_V2_FIXTURE)
    assert len(rows) == 8
    eval_set = create(stub, rows, eval_set=eval_set_pb2.EvalSet(description="v2"))
    assert eval_set.name.startswith("evalSets/")
    assert eval_set.item_count == len(rows) and eval_set.description == "v2"
    assert sum(v for k, v in eval_set.counts.items() if k.startswith("category=")) == len(rows)
    assert stub.GetEvalSet(pb.GetEvalSetRequest(name=eval_set.name)).eval_set == eval_set
    listed = stub.ListEvalSets(pb.ListEvalSetsRequest(page_size=1000)).eval_sets
    assert eval_set.name in [e.name for e in listed]

    got: list[eval_set_pb2.EvalSetItem] = []
    token, pages = "", 0
    while True:
        page = stub.ListEvalSetItems(
            pb.ListEvalSetItemsRequest(eval_set=eval_set.name, page_size=3, page_token=token)
        )
        pages += 1
        got += page.items
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert [i.item_id for i in got] == [r["id"] for r in rows]
    assert got[0].expected_answer == rows[0]["expected_answer"]
    assert dict(got[0].meta)["category"] == rows[0]["category"]


@pytest.mark.parametrize(
    ("path", "counts"),
    [
        (
            SHIPPED_EVAL_SET,
            {f"category={c}": 40 for c in ("arithmetic", "counting", "string", "word_problem")}
            | {"category=unit_conversion": 40}
            | {"difficulty=easy": 80, "difficulty=hard": 60, "difficulty=medium": 60},
        ),
        (
            EVAL_SET_V2_FIXTURE,
            {"category=arithmetic": 3, "category=counting": 1, "category=knowledge": 1}
            | {"category=pattern": 1, "category=reasoning": 2}
            | {"difficulty=easy": 4, "difficulty=hard": 2, "difficulty=medium": 2}
            | {"section=core": 3, "section=edge_case": 2, "section=trace_sensitive": 3},
        ),
    ],
)
def test_eval_set_files_read_by_the_cli_are_stored_whole(
    stub: Stub, path: Path, counts: dict[str, int]
) -> None:
    """What `tunix-rt evalsets import FILE` sends: every line of the file, as one eval set."""
    rows = read_rows(path)
    items = read_eval_set_file(path)
    eval_set = stub.CreateEvalSet(
        pb.CreateEvalSetRequest(eval_set_id=unique("es"), items=items)
    ).eval_set
    assert eval_set.item_count == len(rows)
    assert dict(eval_set.counts) == counts
    stored = stub.ListEvalSetItems(
        pb.ListEvalSetItemsRequest(eval_set=eval_set.name, page_size=1000)
    ).items
    assert [(i.item_id, i.prompt, i.expected_answer) for i in stored] == [
        (r["id"], r["prompt"], r["expected_answer"]) for r in rows
    ]
    for item, row in zip(stored, rows, strict=True):
        meta = dict(item.meta)
        for key in ("section", "category", "difficulty"):
            assert meta.get(key) == row.get(key), key
        for key, value in row.get("meta", {}).items():  # the shipped set's `meta` object
            assert meta[key] == value, key


def test_request_id_is_idempotent_and_ids_are_unique(stub: Stub) -> None:
    rows = read_rows(EVAL_SET_V2_FIXTURE)[:3]
    eval_set_id, key = unique("es"), unique("req")
    first = create(stub, rows, eval_set_id=eval_set_id, request_id=key)
    assert create(stub, rows, eval_set_id=eval_set_id, request_id=key) == first
    rpc_error(grpc.StatusCode.ALREADY_EXISTS, lambda: create(stub, rows, eval_set_id=eval_set_id))


def test_bad_eval_sets_name_the_field(stub: Stub) -> None:
    rows = read_rows(EVAL_SET_V2_FIXTURE)[:2]
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
    rows = read_rows(EVAL_SET_V2_FIXTURE)[:2]
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
    eval_set = create(stub, read_rows(EVAL_SET_V2_FIXTURE)[:1])
    stub.DeleteEvalSet(pb.DeleteEvalSetRequest(name=eval_set.name))
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetEvalSet(pb.GetEvalSetRequest(name=eval_set.name)),
    )
