"""Evaluations through the real server: recording results with per-item predictions, listing by
model, version and dataset, and the per-dataset leaderboard."""

from __future__ import annotations

import functools
import math
from typing import Any

import grpc

from tests.registry.helpers import (
    Stub,
    bad_request_fields,
    error_reason,
    make_trace,
    resource_info,
    rpc_error,
    struct,
    unique,
)
from tunix_rt.v1 import dataset_pb2, evaluation_pb2, model_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

TRAIN, EVAL = dataset_pb2.DATASET_SPLIT_TRAIN, dataset_pb2.DATASET_SPLIT_EVAL


def new_dataset(stub: Stub) -> str:
    trace = stub.CreateTrace(pb.CreateTraceRequest(trace=make_trace(source=unique()))).trace
    name: str = stub.CreateDataset(
        pb.CreateDatasetRequest(
            dataset_id=unique("ds"), trace_names=pb.TraceNames(names=[trace.name])
        )
    ).dataset.name
    return name


def new_model(stub: Stub, artifact: str, versions: int) -> list[str]:
    """A new model's version names, oldest first."""
    model = f"models/{unique('m')}"
    return [
        stub.CreateModelVersion(
            pb.CreateModelVersionRequest(
                parent=model, model_version=model_pb2.ModelVersion(artifact=artifact)
            )
        ).model_version.name
        for _ in range(versions)
    ]


def evaluate(
    stub: Stub,
    version: str,
    dataset: str,
    items: list[evaluation_pb2.EvaluationItem] | None = None,
    split: dataset_pb2.DatasetSplit = EVAL,
    **metrics: float,
) -> evaluation_pb2.Evaluation:
    evaluation: evaluation_pb2.Evaluation = stub.CreateEvaluation(
        pb.CreateEvaluationRequest(
            evaluation=evaluation_pb2.Evaluation(
                model_version=version, dataset=dataset, split=split, metrics=metrics
            ),
            items=items or [],
        )
    ).evaluation
    return evaluation


def item(n: int, correct: bool = True) -> evaluation_pb2.EvaluationItem:
    return evaluation_pb2.EvaluationItem(
        item_id=f"item-{n}",
        prompt=f"What is {n} + {n}?",
        expected=str(2 * n),
        prediction=f"{n} + {n} = {2 * n}\nAnswer: {2 * n if correct else 0}",
        extracted_answer=str(2 * n if correct else 0),
        correct=correct,
        scores={"exact": 1.0 if correct else 0.0},
        meta=struct({"difficulty": "easy", "n": n}),
    )


def board(stub: Stub, dataset: str, metric: str, **kw: Any) -> list[tuple[int, str, float]]:
    entries = stub.GetLeaderboard(
        pb.GetLeaderboardRequest(dataset=dataset, metric=metric, **kw)
    ).entries
    return [(e.rank, e.model_version, round(e.value, 9)) for e in entries]


def test_create_and_get_evaluation(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    (version,) = new_model(stub, artifact, 1)
    evaluation = stub.CreateEvaluation(
        pb.CreateEvaluationRequest(
            evaluation=evaluation_pb2.Evaluation(
                model_version=version,
                dataset=dataset,
                split=EVAL,
                metrics={"answer_accuracy": 0.75, "loss": 0.4},
                config=struct({"temperature": 0, "max_tokens": 256}),
                item_count=999,  # output only
            ),
            items=[item(n, correct=n % 4 != 0) for n in range(4)],
        )
    ).evaluation
    assert evaluation.name.startswith("evaluations/")
    assert (evaluation.model_version, evaluation.dataset) == (version, dataset)
    assert evaluation.split == EVAL
    assert dict(evaluation.metrics) == {"answer_accuracy": 0.75, "loss": 0.4}
    assert evaluation.config == struct({"temperature": 0, "max_tokens": 256})
    assert evaluation.item_count == 4
    assert evaluation.create_time.seconds > 0
    got = stub.GetEvaluation(pb.GetEvaluationRequest(name=evaluation.name)).evaluation
    assert got == evaluation


def test_list_items_in_pages(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    (version,) = new_model(stub, artifact, 1)
    items = [item(n, correct=n % 3 == 0) for n in range(23)]
    evaluation = evaluate(stub, version, dataset, items, answer_accuracy=8 / 23)
    seen: list[evaluation_pb2.EvaluationItem] = []
    token = ""
    while True:
        page = stub.ListEvaluationItems(
            pb.ListEvaluationItemsRequest(evaluation=evaluation.name, page_size=5, page_token=token)
        )
        assert len(page.items) <= 5
        seen.extend(page.items)
        token = page.next_page_token
        if not token:
            break
    assert seen == items  # every field, in recorded order


def test_list_evaluations_by_model_version_and_dataset(stub: Stub, artifact: str) -> None:
    d1, d2 = new_dataset(stub), new_dataset(stub)
    v1, v2 = new_model(stub, artifact, 2)
    (other,) = new_model(stub, artifact, 1)
    model = v1.rsplit("/versions/", 1)[0]
    e1 = evaluate(stub, v1, d1, acc=0.1)
    e2 = evaluate(stub, v2, d1, acc=0.2)
    e3 = evaluate(stub, v2, d2, acc=0.3)
    e4 = evaluate(stub, other, d1, acc=0.4)

    def names(**filters: str) -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            page = stub.ListEvaluations(
                pb.ListEvaluationsRequest(page_size=2, page_token=token, **filters)
            )
            seen.extend(e.name for e in page.evaluations)
            token = page.next_page_token
            if not token:
                return seen

    assert names(model=model) == [e3.name, e2.name, e1.name]  # newest first
    assert names(model=v2) == [e3.name, e2.name]
    assert names(dataset=d1) == [e4.name, e2.name, e1.name]
    assert names(model=model, dataset=d1) == [e2.name, e1.name]
    assert names(model=v1, dataset=d2) == []
    everything = names()
    assert [n for n in everything if n in {e1.name, e2.name, e3.name, e4.name}] == [
        e4.name,
        e3.name,
        e2.name,
        e1.name,
    ]
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.ListEvaluations(pb.ListEvaluationsRequest(model=f"models/{unique('none')}")),
    )
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.ListEvaluations(pb.ListEvaluationsRequest(dataset=f"datasets/{unique('x')}")),
    )
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListEvaluations(pb.ListEvaluationsRequest(model="models/m/versions/x")),
    )
    assert bad_request_fields(err) == ["model"]


def test_bad_evaluations_are_refused_and_store_nothing(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    (version,) = new_model(stub, artifact, 1)
    model = version.rsplit("/versions/", 1)[0]

    def create(**fields: Any) -> Any:
        items = fields.pop("items", [])
        spec: dict[str, Any] = {
            "model_version": version,
            "dataset": dataset,
            "metrics": {"acc": 0.5},
            **fields,
        }
        return stub.CreateEvaluation(
            pb.CreateEvaluationRequest(evaluation=evaluation_pb2.Evaluation(**spec), items=items)
        )

    invalid: list[tuple[dict[str, Any], str]] = [
        ({"metrics": {"acc": math.nan}}, "evaluation.metrics['acc']"),
        ({"metrics": {"acc": math.inf}}, "evaluation.metrics['acc']"),
        ({"metrics": {}}, "evaluation.metrics"),
        ({"model_version": "models/x"}, "evaluation.model_version"),
        ({"model_version": f"{model}/versions/0"}, "evaluation.model_version"),
        ({"dataset": "a/b"}, "evaluation.dataset"),
        ({"split": 9}, "evaluation.split"),
        ({"config": struct({"t": math.nan})}, "evaluation.config"),
        ({"items": [evaluation_pb2.EvaluationItem()]}, "items[0].item_id"),
        (
            {"items": [item(0), evaluation_pb2.EvaluationItem(item_id="x" * 257)]},
            "items[1].item_id",
        ),
        (
            {"items": [evaluation_pb2.EvaluationItem(item_id="a", meta=struct({"x": math.inf}))]},
            "items[0]",
        ),
    ]
    for fields, field in invalid:
        err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, functools.partial(create, **fields))
        assert bad_request_fields(err) == [field], fields
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: create(model_version=f"{model}/versions/2"))
    err = rpc_error(grpc.StatusCode.NOT_FOUND, lambda: create(dataset=f"datasets/{unique('x')}"))
    assert resource_info(err).resource_type == "dataset"
    assert list(stub.ListEvaluations(pb.ListEvaluationsRequest(model=model)).evaluations) == []


def test_unknown_evaluation_is_not_found(stub: Stub) -> None:
    name = "evaluations/" + "0" * 32
    err = rpc_error(
        grpc.StatusCode.NOT_FOUND, lambda: stub.GetEvaluation(pb.GetEvaluationRequest(name=name))
    )
    assert resource_info(err).resource_name == name
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.ListEvaluationItems(pb.ListEvaluationItemsRequest(evaluation=name)),
    )


def test_create_with_request_id_is_idempotent(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    (version,) = new_model(stub, artifact, 1)
    request = pb.CreateEvaluationRequest(
        evaluation=evaluation_pb2.Evaluation(
            model_version=version, dataset=dataset, metrics={"acc": 0.5}
        ),
        items=[item(1)],
        request_id=unique("req"),
    )
    first = stub.CreateEvaluation(request).evaluation
    assert stub.CreateEvaluation(request).evaluation == first
    listed = stub.ListEvaluations(pb.ListEvaluationsRequest(dataset=dataset)).evaluations
    assert [e.name for e in listed] == [first.name]


# Leaderboard.


def test_leaderboard_best_first_one_row_per_version(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    v1, v2, v3 = new_model(stub, artifact, 3)
    (other,) = new_model(stub, artifact, 1)
    evaluate(stub, v1, dataset, answer_accuracy=0.5)
    best_v1 = evaluate(stub, v1, dataset, answer_accuracy=0.7)
    evaluate(stub, v1, dataset, answer_accuracy=0.6)
    evaluate(stub, v2, dataset, answer_accuracy=0.9)
    evaluate(stub, v3, dataset, answer_accuracy=0.6)
    evaluate(stub, other, dataset, loss=0.1)  # lacks the metric: not ranked
    evaluate(stub, other, new_dataset(stub), answer_accuracy=1.0)  # another dataset

    assert board(stub, dataset, "answer_accuracy") == [
        (1, v2, 0.9),
        (2, v1, 0.7),
        (3, v3, 0.6),
    ]
    entries = stub.GetLeaderboard(
        pb.GetLeaderboardRequest(dataset=dataset, metric="answer_accuracy")
    ).entries
    assert entries[1].evaluation == best_v1.name  # the version's best evaluation
    assert entries[1].create_time == best_v1.create_time


def test_leaderboard_lower_is_better(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    v1, v2, v3 = new_model(stub, artifact, 3)
    evaluate(stub, v1, dataset, loss=1.2)
    evaluate(stub, v2, dataset, loss=0.8)
    evaluate(stub, v2, dataset, loss=0.9)
    evaluate(stub, v3, dataset, loss=1.0)
    assert [v for _, v, _ in board(stub, dataset, "loss", lower_is_better=True)] == [v2, v3, v1]
    assert board(stub, dataset, "loss", lower_is_better=True)[0][2] == 0.8
    assert [v for _, v, _ in board(stub, dataset, "loss")] == [v1, v3, v2]


def test_leaderboard_pages_and_splits(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    versions = new_model(stub, artifact, 5)
    for n, version in enumerate(versions):
        evaluate(stub, version, dataset, split=EVAL, acc=n / 10)
    evaluate(stub, versions[0], dataset, split=TRAIN, acc=0.99)
    ranked: list[tuple[int, str, float]] = []
    token = ""
    while True:
        page = stub.GetLeaderboard(
            pb.GetLeaderboardRequest(
                dataset=dataset, metric="acc", split=EVAL, page_size=2, page_token=token
            )
        )
        ranked.extend((e.rank, e.model_version, e.value) for e in page.entries)
        token = page.next_page_token
        if not token:
            break
    assert [r for r, _, _ in ranked] == [1, 2, 3, 4, 5]
    assert [v for _, v, _ in ranked] == versions[::-1]
    assert board(stub, dataset, "acc", split=TRAIN) == [(1, versions[0], 0.99)]
    assert board(stub, dataset, "acc")[0][1] == versions[0]  # any split


def test_leaderboard_bad_requests(stub: Stub) -> None:
    dataset = new_dataset(stub)
    err = rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: board(stub, f"datasets/{unique('none')}", "acc"),
    )
    assert resource_info(err).resource_type == "dataset"
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: board(stub, dataset, ""))
    assert bad_request_fields(err) == ["metric"]
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: board(stub, dataset, "acc", split=7))
    assert bad_request_fields(err) == ["split"]
    assert board(stub, dataset, "acc") == []  # no evaluations yet
    first = stub.GetLeaderboard(pb.GetLeaderboardRequest(dataset=dataset, metric="acc"))
    assert first.next_page_token == ""
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: board(stub, dataset, "acc", page_token="bogus"),
    )
    assert bad_request_fields(err) == ["page_token"]


def test_an_evaluated_dataset_cannot_be_deleted(stub: Stub, artifact: str) -> None:
    dataset = new_dataset(stub)
    (version,) = new_model(stub, artifact, 1)
    evaluation = evaluate(stub, version, dataset, acc=0.5)
    err = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stub.DeleteDataset(pb.DeleteDatasetRequest(name=dataset)),
    )
    assert error_reason(err) == "DATASET_HAS_EVALUATIONS"
    assert stub.GetDataset(pb.GetDatasetRequest(name=dataset)).dataset.name == dataset
    assert (
        stub.GetEvaluation(pb.GetEvaluationRequest(name=evaluation.name)).evaluation == evaluation
    )
