"""Registered models through the real server: versions, aliases that move atomically, and
reference resolution."""

from __future__ import annotations

import functools
import threading
from typing import Any

import grpc
import pytest

from tests.registry.helpers import (
    Stub,
    bad_request_fields,
    race,
    resource_info,
    rpc_error,
    struct,
    unique,
)
from tunix_rt.v1 import model_pb2
from tunix_rt.v1 import registry_service_pb2 as pb


def add_version(
    stub: Stub, model: str, artifact: str, aliases: list[str] | None = None, **fields: Any
) -> model_pb2.ModelVersion:
    version: model_pb2.ModelVersion = stub.CreateModelVersion(
        pb.CreateModelVersionRequest(
            parent=model,
            model_version=model_pb2.ModelVersion(artifact=artifact, **fields),
            aliases=aliases or [],
        )
    ).model_version
    return version


def model_with_versions(stub: Stub, artifact: str, count: int) -> str:
    model = f"models/{unique('m')}"
    for _ in range(count):
        add_version(stub, model, artifact)
    return model


def get_model(stub: Stub, name: str) -> model_pb2.Model:
    model: model_pb2.Model = stub.GetModel(pb.GetModelRequest(name=name)).model
    return model


def get_version(stub: Stub, name: str) -> model_pb2.ModelVersion:
    version: model_pb2.ModelVersion = stub.GetModelVersion(
        pb.GetModelVersionRequest(name=name)
    ).model_version
    return version


def resolve(stub: Stub, reference: str) -> model_pb2.ModelVersion:
    version: model_pb2.ModelVersion = stub.ResolveModelVersion(
        pb.ResolveModelVersionRequest(reference=reference)
    ).model_version
    return version


def set_alias(stub: Stub, model: str, alias: str, version: int) -> pb.SetModelAliasResponse:
    response: pb.SetModelAliasResponse = stub.SetModelAlias(
        pb.SetModelAliasRequest(model=model, alias=alias, version=version)
    )
    return response


def test_create_model(stub: Stub) -> None:
    model_id = unique("m")
    model = stub.CreateModel(
        pb.CreateModelRequest(model_id=model_id, description="a model", labels={"base": "gemma"})
    ).model
    assert model.name == f"models/{model_id}"
    assert (model.description, dict(model.labels)) == ("a model", {"base": "gemma"})
    assert model.latest_version == 0
    assert dict(model.aliases) == {}
    assert get_model(stub, model.name) == model
    err = rpc_error(
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: stub.CreateModel(pb.CreateModelRequest(model_id=model_id, description="other")),
    )
    assert resource_info(err).resource_name == model.name
    assert get_model(stub, model.name).description == "a model"


@pytest.mark.parametrize("model_id", ["", "-x", "a/b", "a b", "x" * 129, "models/x"])
def test_bad_model_id_is_invalid(stub: Stub, model_id: str) -> None:
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateModel(pb.CreateModelRequest(model_id=model_id)),
    )
    assert bad_request_fields(err) == ["model_id"]


def test_versions_auto_increment(stub: Stub, artifact: str) -> None:
    model = f"models/{unique('m')}"  # created by its first version
    provenance = {"run": "runs/r1", "dataset": "datasets/d", "steps": 100}
    first = add_version(
        stub,
        model,
        artifact,
        source_run="runs/r1",
        metrics={"loss": 0.5},
        provenance=struct(provenance),
        description="v1",
    )
    assert (first.name, first.version) == (f"{model}/versions/1", 1)
    assert (first.artifact, first.source_run, first.description) == (artifact, "runs/r1", "v1")
    assert dict(first.metrics) == {"loss": 0.5}
    assert first.provenance == struct(provenance)
    assert [add_version(stub, model, artifact).version for _ in range(3)] == [2, 3, 4]
    assert get_model(stub, model).latest_version == 4
    assert get_version(stub, f"{model}/versions/1") == first

    seen: list[int] = []
    token = ""
    while True:
        page = stub.ListModelVersions(
            pb.ListModelVersionsRequest(parent=model, page_size=3, page_token=token)
        )
        seen.extend(v.version for v in page.model_versions)
        token = page.next_page_token
        if not token:
            break
    assert seen == [4, 3, 2, 1]  # newest first


def test_unknown_artifact_is_not_found_and_creates_nothing(stub: Stub, artifact: str) -> None:
    missing = "artifacts/" + "0" * 64
    new_model = f"models/{unique('m')}"
    err = rpc_error(grpc.StatusCode.NOT_FOUND, lambda: add_version(stub, new_model, missing))
    assert resource_info(err).resource_name == missing
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: get_model(stub, new_model))  # not half-made

    model = model_with_versions(stub, artifact, 1)
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: add_version(stub, model, missing, ["staging"]))
    after = get_model(stub, model)
    assert (after.latest_version, dict(after.aliases)) == (1, {})
    assert add_version(stub, model, artifact).version == 2  # no number was used up


@pytest.mark.parametrize(
    ("artifact_name", "aliases", "field"),
    [
        ("artifacts/xyz", [], "model_version.artifact"),
        ("artifacts/../../etc/passwd", [], "model_version.artifact"),
        ("", [], "model_version.artifact"),
        (None, ["latest"], "aliases[0]"),
        (None, ["ok", "1bad"], "aliases[1]"),
    ],
)
def test_bad_version_requests_are_invalid(
    stub: Stub, artifact: str, artifact_name: str | None, aliases: list[str], field: str
) -> None:
    model = f"models/{unique('m')}"
    real = artifact if artifact_name is None else artifact_name
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: add_version(stub, model, real, aliases)
    )
    assert bad_request_fields(err) == [field]
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: get_model(stub, model))


def test_version_metrics_must_be_finite(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 1)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: add_version(stub, model, artifact, metrics={"loss": float("inf")}),
    )
    assert bad_request_fields(err) == ["model_version.metrics['loss']"]
    assert get_model(stub, model).latest_version == 1


def test_create_version_with_request_id_is_idempotent(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 1)
    request = pb.CreateModelVersionRequest(
        parent=model,
        model_version=model_pb2.ModelVersion(artifact=artifact, metrics={"acc": 0.5}),
        request_id=unique("req"),
    )
    first = stub.CreateModelVersion(request).model_version
    assert stub.CreateModelVersion(request).model_version == first
    assert get_model(stub, model).latest_version == 2


# Aliases.


def test_aliases_move_atomically(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 3)
    created = set_alias(stub, model, "production", 1)
    assert created.previous_version == 0
    assert dict(created.model.aliases) == {"production": 1}
    moved = set_alias(stub, model, "production", 2)
    assert moved.previous_version == 1
    assert dict(moved.model.aliases) == {"production": 2}
    assert list(get_version(stub, f"{model}/versions/1").aliases) == []
    assert list(get_version(stub, f"{model}/versions/2").aliases) == ["production"]
    set_alias(stub, model, "staging", 2)
    assert list(get_version(stub, f"{model}/versions/2").aliases) == ["production", "staging"]
    assert dict(get_model(stub, model).aliases) == {"production": 2, "staging": 2}
    same = set_alias(stub, model, "staging", 2)
    assert same.previous_version == 2


def test_create_version_can_take_aliases(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 1)
    set_alias(stub, model, "production", 1)
    version = add_version(stub, model, artifact, ["production", "canary"])
    assert sorted(version.aliases) == ["canary", "production"]
    assert dict(get_model(stub, model).aliases) == {"canary": 2, "production": 2}
    assert list(get_version(stub, f"{model}/versions/1").aliases) == []


def test_delete_alias(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 1)
    set_alias(stub, model, "staging", 1)
    set_alias(stub, model, "production", 1)
    after = stub.DeleteModelAlias(pb.DeleteModelAliasRequest(model=model, alias="staging")).model
    assert dict(after.aliases) == {"production": 1}
    assert list(get_version(stub, f"{model}/versions/1").aliases) == ["production"]
    err = rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.DeleteModelAlias(pb.DeleteModelAliasRequest(model=model, alias="staging")),
    )
    assert resource_info(err).resource_name == f"{model}@staging"
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: resolve(stub, f"{model}@staging"))


def test_alias_to_a_missing_version_changes_nothing(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 2)
    set_alias(stub, model, "production", 2)
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: set_alias(stub, model, "production", 3))
    assert dict(get_model(stub, model).aliases) == {"production": 2}
    rpc_error(
        grpc.StatusCode.NOT_FOUND, lambda: set_alias(stub, f"models/{unique('none')}", "prod", 1)
    )


@pytest.mark.parametrize(
    ("alias", "version", "field"),
    [
        ("latest", 1, "alias"),
        ("", 1, "alias"),
        ("1abc", 1, "alias"),
        ("has space", 1, "alias"),
        ("a" * 65, 1, "alias"),
        ("ok", 0, "version"),
        ("ok", -2, "version"),
        ("ok", 2**40, "version"),
    ],
)
def test_bad_aliases_are_invalid(
    stub: Stub, artifact: str, alias: str, version: int, field: str
) -> None:
    model = model_with_versions(stub, artifact, 1)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: set_alias(stub, model, alias, version)
    )
    assert bad_request_fields(err) == [field]
    assert dict(get_model(stub, model).aliases) == {}


def test_concurrent_alias_moves_are_atomic(stub: Stub, artifact: str) -> None:
    count = 8
    model = model_with_versions(stub, artifact, count)
    previous: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def move(version: int) -> None:
        try:
            barrier.wait(timeout=10)
            response = set_alias(stub, model, "production", version)
            with lock:
                previous.append(response.previous_version)
        except BaseException as exc:  # reported below, on the main thread
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=move, args=(v,)) for v in range(1, count + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    final = get_model(stub, model).aliases["production"]
    assert 1 <= final <= count
    # Serialized moves form one chain: each saw the one before it, the first saw none.
    assert sorted(previous) == sorted([0] + [v for v in range(1, count + 1) if v != final])
    holders = [
        v
        for v in range(1, count + 1)
        if "production" in get_version(stub, f"{model}/versions/{v}").aliases
    ]
    assert holders == [final]


# Resolution.


def test_resolve_every_reference_form(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 3)
    model_id = model.removeprefix("models/")
    set_alias(stub, model, "production", 2)
    forms = {
        f"{model_id}@production": 2,
        f"{model}@production": 2,
        f"{model_id}/3": 3,
        f"{model_id}/1": 1,
        model_id: 3,
        model: 3,
        f"{model_id}@latest": 3,
        f"{model}/versions/2": 2,
    }
    for reference, version in forms.items():
        resolved = resolve(stub, reference)
        assert (resolved.name, resolved.version) == (f"{model}/versions/{version}", version), (
            reference
        )
    # `latest` follows new versions; aliases stay put.
    add_version(stub, model, artifact)
    assert resolve(stub, model_id).version == 4
    assert resolve(stub, f"{model_id}@production").version == 2


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "@production",
        "m@",
        "m@1abc",
        "m@bad alias",
        "m/",
        "m/abc",
        "m/0",
        "m/-1",
        "m/1/2",
        "m/²",
        "m/99999999999999999999",
        "models/m/versions/0",
        "models/m/versions/x",
        "a b",
        "../m",
    ],
)
def test_bad_references_are_invalid(stub: Stub, reference: str) -> None:
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: resolve(stub, reference))
    assert bad_request_fields(err) == ["reference"]


def test_unresolvable_references_are_not_found(stub: Stub, artifact: str) -> None:
    model = model_with_versions(stub, artifact, 1)
    model_id = model.removeprefix("models/")
    empty = stub.CreateModel(pb.CreateModelRequest(model_id=unique("empty"))).model
    for reference in [
        f"{model_id}@production",
        f"{model_id}/2",
        f"{model}/versions/7",
        unique("none"),
        f"{unique('none')}@production",
        empty.name,
        f"{empty.name}@latest",
    ]:
        rpc_error(grpc.StatusCode.NOT_FOUND, functools.partial(resolve, stub, reference))


def test_list_models_pages_by_name(stub: Stub) -> None:
    prefix = unique("list")
    mine = [f"models/{prefix}-{n}" for n in range(5)]
    for name in reversed(mine):
        stub.CreateModel(pb.CreateModelRequest(model_id=name.removeprefix("models/")))
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListModels(pb.ListModelsRequest(page_size=2, page_token=token))
        seen.extend(m.name for m in page.models)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert [n for n in seen if n in mine] == mine


def test_concurrent_first_versions_of_a_new_model(stub: Stub, artifact: str) -> None:
    model = f"models/{unique('m')}"
    numbers: list[int] = []
    lock = threading.Lock()

    def add(_n: int) -> None:
        version = add_version(stub, model, artifact)
        with lock:
            numbers.append(version.version)

    assert race(8, add) == {"OK": 8}
    assert sorted(numbers) == list(range(1, 9))
    assert get_model(stub, model).latest_version == 8


def test_concurrent_creates_of_one_model_id(stub: Stub) -> None:
    model_id = unique("m")
    outcomes = race(8, lambda _n: stub.CreateModel(pb.CreateModelRequest(model_id=model_id)))
    assert outcomes == {"OK": 1, "ALREADY_EXISTS": 7}
