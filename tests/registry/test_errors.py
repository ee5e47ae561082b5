"""Error statuses through the real server: google.rpc details on every domain error, and bad input
of every shape answered as INVALID_ARGUMENT (or NOT_FOUND), never INTERNAL."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from tests.registry.helpers import (
    Stub,
    bad_request_fields,
    detail,
    make_trace,
    resource_info,
    rpc_error,
    rpc_status_of,
    unique,
)
from tunix_rt.v1 import evaluation_pb2, model_pb2, run_pb2, trace_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

Call = Callable[[Stub, str], Any]


@dataclass(frozen=True)
class World:
    """One stored resource of each kind, for calls that need a real parent."""

    trace: str
    dataset: str
    run: str
    model: str
    version: str
    artifact: str
    evaluation: str


@pytest.fixture(scope="module")
def world(stub: Stub, artifact: str) -> World:
    trace = stub.CreateTrace(pb.CreateTraceRequest(trace=make_trace(source=unique()))).trace.name
    dataset = stub.CreateDataset(
        pb.CreateDatasetRequest(dataset_id=unique("ds"), trace_names=pb.TraceNames(names=[trace]))
    ).dataset.name
    run = stub.CreateRun(pb.CreateRunRequest(run=run_pb2.Run(dataset=dataset))).run.name
    model = f"models/{unique('m')}"
    version = stub.CreateModelVersion(
        pb.CreateModelVersionRequest(
            parent=model, model_version=model_pb2.ModelVersion(artifact=artifact)
        )
    ).model_version.name
    evaluation = stub.CreateEvaluation(
        pb.CreateEvaluationRequest(
            evaluation=evaluation_pb2.Evaluation(
                model_version=version, dataset=dataset, metrics={"acc": 1.0}
            )
        )
    ).evaluation.name
    return World(trace, dataset, run, model, version, artifact, evaluation)


def drain(responses: Any) -> list[Any]:
    return list(responses)


EVENT = run_pb2.RunEvent(sequence=1, log=run_pb2.LogLine(message="x"))

# Every method that takes a resource name: (collection, field named in errors, call).
NAMED: dict[str, tuple[str, str, Call]] = {
    "GetTrace": ("traces", "name", lambda s, n: s.GetTrace(pb.GetTraceRequest(name=n))),
    "DeleteTrace": ("traces", "name", lambda s, n: s.DeleteTrace(pb.DeleteTraceRequest(name=n))),
    "GetDataset": ("datasets", "name", lambda s, n: s.GetDataset(pb.GetDatasetRequest(name=n))),
    "DeleteDataset": (
        "datasets",
        "name",
        lambda s, n: s.DeleteDataset(pb.DeleteDatasetRequest(name=n)),
    ),
    "ExportDataset": (
        "datasets",
        "name",
        lambda s, n: drain(s.ExportDataset(pb.ExportDatasetRequest(name=n))),
    ),
    "GetRun": ("runs", "name", lambda s, n: s.GetRun(pb.GetRunRequest(name=n))),
    "TransitionRun": (
        "runs",
        "name",
        lambda s, n: s.TransitionRun(
            pb.TransitionRunRequest(name=n, state=run_pb2.RUN_STATE_RUNNING)
        ),
    ),
    "AppendRunEvents": (
        "runs",
        "run",
        lambda s, n: s.AppendRunEvents(pb.AppendRunEventsRequest(run=n, events=[EVENT])),
    ),
    "ListRunEvents": ("runs", "run", lambda s, n: s.ListRunEvents(pb.ListRunEventsRequest(run=n))),
    "CreateCheckpoint": (
        "runs",
        "run",
        lambda s, n: s.CreateCheckpoint(
            pb.CreateCheckpointRequest(run=n, checkpoint=run_pb2.Checkpoint(step=1))
        ),
    ),
    "ListCheckpoints": (
        "runs",
        "run",
        lambda s, n: s.ListCheckpoints(pb.ListCheckpointsRequest(run=n)),
    ),
    "GetModel": ("models", "name", lambda s, n: s.GetModel(pb.GetModelRequest(name=n))),
    "ListModelVersions": (
        "models",
        "parent",
        lambda s, n: s.ListModelVersions(pb.ListModelVersionsRequest(parent=n)),
    ),
    "SetModelAlias": (
        "models",
        "model",
        lambda s, n: s.SetModelAlias(pb.SetModelAliasRequest(model=n, alias="prod", version=1)),
    ),
    "DeleteModelAlias": (
        "models",
        "model",
        lambda s, n: s.DeleteModelAlias(pb.DeleteModelAliasRequest(model=n, alias="prod")),
    ),
    "GetModelVersion": (
        "models",
        "name",
        lambda s, n: s.GetModelVersion(pb.GetModelVersionRequest(name=n)),
    ),
    "ResolveModelVersion": (
        "models",
        "reference",
        lambda s, n: s.ResolveModelVersion(pb.ResolveModelVersionRequest(reference=n)),
    ),
    "GetArtifact": ("artifacts", "name", lambda s, n: s.GetArtifact(pb.GetArtifactRequest(name=n))),
    "DownloadArtifact": (
        "artifacts",
        "name",
        lambda s, n: drain(s.DownloadArtifact(pb.DownloadArtifactRequest(name=n))),
    ),
    "GetEvaluation": (
        "evaluations",
        "name",
        lambda s, n: s.GetEvaluation(pb.GetEvaluationRequest(name=n)),
    ),
    "ListEvaluationItems": (
        "evaluations",
        "evaluation",
        lambda s, n: s.ListEvaluationItems(pb.ListEvaluationItemsRequest(evaluation=n)),
    ),
    "GetLeaderboard": (
        "datasets",
        "dataset",
        lambda s, n: s.GetLeaderboard(pb.GetLeaderboardRequest(dataset=n, metric="acc")),
    ),
}

MALFORMED = [
    "",
    " ",
    "/",
    "..",
    "../../etc/passwd",
    "a/b/c/d",
    "x" * 300,
    "bad\x00name",
    "名前",
    "-flag",
    "{c}/",
    "{c}/../x",
    "{c}/a b",
    "{c}/a/b",
    "{c}/%2e%2e",
    "{c}/x/versions/0",
    "{c}/x/versions/99999999999",
]


@pytest.mark.parametrize("method", sorted(NAMED))
def test_malformed_names_are_invalid_never_internal(stub: Stub, method: str) -> None:
    collection, field, call = NAMED[method]
    for template in MALFORMED:
        name = template.replace("{c}", collection)
        with pytest.raises(grpc.RpcError) as caught:
            call(stub, name)
        err = caught.value
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, err.code(), err.details())
        assert bad_request_fields(err) == [field], name


UNKNOWN = {
    "traces": "traces/" + "f" * 32,
    "datasets": "datasets/never-made",
    "runs": "runs/never-made",
    "models": "models/never-made",
    "artifacts": "artifacts/" + hashlib.sha256(b"never uploaded").hexdigest(),
    "evaluations": "evaluations/" + "f" * 32,
}


@pytest.mark.parametrize("method", sorted(NAMED))
def test_not_found_carries_resource_info(stub: Stub, world: World, method: str) -> None:
    collection, _field, call = NAMED[method]
    name = UNKNOWN[collection]
    if method == "GetModelVersion":
        name = f"{world.model}/versions/9"  # the model exists, the version does not
    err = rpc_error(grpc.StatusCode.NOT_FOUND, lambda: call(stub, name))
    info = resource_info(err)
    assert info.resource_name == name
    assert info.resource_type
    assert info.description
    reason = detail(err, error_details_pb2.ErrorInfo)
    assert (reason.reason, reason.domain) == ("NOT_FOUND", "tunix-rt")


def test_already_exists_carries_resource_info(stub: Stub, world: World) -> None:
    model_id = world.model.removeprefix("models/")
    err = rpc_error(
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: stub.CreateModel(pb.CreateModelRequest(model_id=model_id)),
    )
    info = resource_info(err)
    assert (info.resource_type, info.resource_name) == ("model", world.model)
    assert detail(err, error_details_pb2.ErrorInfo).reason == "ALREADY_EXISTS"


def test_invalid_argument_carries_bad_request_and_error_info(stub: Stub) -> None:
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateTrace(
            pb.CreateTraceRequest(trace=make_trace(prompt="", steps=[(0, "s", "")]))
        ),
    )
    bad = detail(err, error_details_pb2.BadRequest)
    assert [(v.field, bool(v.description)) for v in bad.field_violations] == [
        ("trace.prompt", True),
        ("trace.steps[0].content", True),
    ]
    assert detail(err, error_details_pb2.ErrorInfo).reason == "INVALID_ARGUMENT"
    status = rpc_status_of(err)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == err.details()
    assert "trace.prompt" in status.message


def test_failed_precondition_carries_a_reason(stub: Stub, world: World) -> None:
    err = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stub.TransitionRun(
            pb.TransitionRunRequest(name=world.run, state=run_pb2.RUN_STATE_SUCCEEDED)
        ),
    )
    info = detail(err, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("ILLEGAL_RUN_TRANSITION", "tunix-rt")
    assert dict(info.metadata) == {"from": "QUEUED", "to": "SUCCEEDED"}


LISTS: dict[str, Callable[[Stub, World, dict[str, Any]], Any]] = {
    "ListTraces": lambda s, w, kw: s.ListTraces(pb.ListTracesRequest(**kw)),
    "ListDatasets": lambda s, w, kw: s.ListDatasets(pb.ListDatasetsRequest(**kw)),
    "ListRuns": lambda s, w, kw: s.ListRuns(pb.ListRunsRequest(**kw)),
    "ListRunEvents": lambda s, w, kw: s.ListRunEvents(pb.ListRunEventsRequest(run=w.run, **kw)),
    "ListCheckpoints": lambda s, w, kw: s.ListCheckpoints(
        pb.ListCheckpointsRequest(run=w.run, **kw)
    ),
    "ListModels": lambda s, w, kw: s.ListModels(pb.ListModelsRequest(**kw)),
    "ListModelVersions": lambda s, w, kw: s.ListModelVersions(
        pb.ListModelVersionsRequest(parent=w.model, **kw)
    ),
    "ListEvaluations": lambda s, w, kw: s.ListEvaluations(pb.ListEvaluationsRequest(**kw)),
    "ListEvaluationItems": lambda s, w, kw: s.ListEvaluationItems(
        pb.ListEvaluationItemsRequest(evaluation=w.evaluation, **kw)
    ),
    "GetLeaderboard": lambda s, w, kw: s.GetLeaderboard(
        pb.GetLeaderboardRequest(dataset=w.dataset, metric="acc", **kw)
    ),
}


@pytest.mark.parametrize("method", sorted(LISTS))
def test_every_list_refuses_bad_pages(stub: Stub, world: World, method: str) -> None:
    call = LISTS[method]
    assert call(stub, world, {"page_size": 10**6}) is not None  # clamped, not refused
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: call(stub, world, {"page_size": -1}))
    assert bad_request_fields(err) == ["page_size"]
    for token in ["x", "not a token", "eyJwIjoxLCJmIjoieCJ9", "AAAA", "e30"]:
        err = rpc_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            functools.partial(call, stub, world, {"page_token": token}),
        )
        assert bad_request_fields(err) == ["page_token"]


NUL = "a\x00b"
UNSTORABLE: dict[str, tuple[str, Callable[[Stub, World], Any]]] = {
    "trace source": (
        "trace.source",
        lambda s, w: s.CreateTrace(pb.CreateTraceRequest(trace=make_trace(source=NUL))),
    ),
    "trace meta key": (
        "trace.meta.'a\\x00b'",
        lambda s, w: s.CreateTrace(pb.CreateTraceRequest(trace=make_trace(meta={NUL: 1}))),
    ),
    "trace meta infinity": (
        "trace.meta",
        lambda s, w: s.CreateTrace(
            pb.CreateTraceRequest(trace=make_trace(meta={"x": [1, float("inf")]}))
        ),
    ),
    "list filter source": (
        "filter.source",
        lambda s, w: s.ListTraces(pb.ListTracesRequest(filter=trace_pb2.TraceFilter(source=NUL))),
    ),
    "list filter meta": (
        "filter.meta[0].value",
        lambda s, w: s.ListTraces(
            pb.ListTracesRequest(
                filter=trace_pb2.TraceFilter(meta=[trace_pb2.MetaCondition(key="k", value=NUL)])
            )
        ),
    ),
    "dataset filter": (
        "filter.source",
        lambda s, w: s.CreateDataset(
            pb.CreateDatasetRequest(
                dataset_id=unique("ds"), filter=trace_pb2.TraceFilter(source=NUL)
            )
        ),
    ),
    "dataset description": (
        "description",
        lambda s, w: s.CreateDataset(
            pb.CreateDatasetRequest(
                dataset_id=unique("ds"),
                description=NUL,
                trace_names=pb.TraceNames(names=[w.trace]),
            )
        ),
    ),
    "request_id": (
        "request_id",
        lambda s, w: s.CreateTrace(pb.CreateTraceRequest(trace=make_trace(), request_id=NUL)),
    ),
    "run display_name": (
        "run.display_name",
        lambda s, w: s.CreateRun(pb.CreateRunRequest(run=run_pb2.Run(display_name=NUL))),
    ),
    "run owner": (
        "run.owner",
        lambda s, w: s.CreateRun(pb.CreateRunRequest(run=run_pb2.Run(owner="o" * 300))),
    ),
    "list runs owner": ("owner", lambda s, w: s.ListRuns(pb.ListRunsRequest(owner=NUL))),
    "list runs dataset": ("dataset", lambda s, w: s.ListRuns(pb.ListRunsRequest(dataset=NUL))),
    "model description": (
        "description",
        lambda s, w: s.CreateModel(pb.CreateModelRequest(model_id=unique("m"), description=NUL)),
    ),
    "version source_run": (
        "model_version.source_run",
        lambda s, w: s.CreateModelVersion(
            pb.CreateModelVersionRequest(
                parent=w.model,
                model_version=model_pb2.ModelVersion(artifact=w.artifact, source_run="r" * 300),
            )
        ),
    ),
    "version description": (
        "model_version.description",
        lambda s, w: s.CreateModelVersion(
            pb.CreateModelVersionRequest(
                parent=w.model,
                model_version=model_pb2.ModelVersion(artifact=w.artifact, description=NUL),
            )
        ),
    ),
    "leaderboard metric": (
        "metric",
        lambda s, w: s.GetLeaderboard(pb.GetLeaderboardRequest(dataset=w.dataset, metric=NUL)),
    ),
    "transition config_update": (
        "config_update",
        lambda s, w: s.TransitionRun(
            pb.TransitionRunRequest(
                name=w.run,
                state=run_pb2.RUN_STATE_RUNNING,
                config_update=make_trace(meta={"x": float("nan")}).meta,
            )
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_values_no_database_stores_are_invalid(stub: Stub, world: World, case: str) -> None:
    """NUL characters (PostgreSQL text refuses them), NaN and infinity (not JSON) and over-long
    text answer INVALID_ARGUMENT on both backends, and change nothing."""
    field, call = UNSTORABLE[case]
    before = stub.GetRun(pb.GetRunRequest(name=world.run)).run
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: call(stub, world))
    assert bad_request_fields(err) == [field]
    assert stub.GetRun(pb.GetRunRequest(name=world.run)).run == before
    assert stub.GetModel(pb.GetModelRequest(name=world.model)).model.latest_version == 1
