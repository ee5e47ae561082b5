"""RegistryClient against a real registry server: imports, paging, datasets, artifacts, models,
leaderboards, and errors that name what is wrong."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import grpc
import pytest

from tunix_rt.client.errors import field_violations
from tunix_rt.client.registry import RegistryClient
from tunix_rt.v1 import dataset_pb2, evaluation_pb2, model_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

from .sample_traces import good_lines, lines_with_bad, write_jsonl


def _import(registry: RegistryClient, tag: str, count: int) -> list[str]:
    result = registry.import_traces(good_lines(count, tag), source=tag)
    assert result.imported_count == count and not result.errors
    return list(result.trace_names)


def test_import_stores_good_lines_and_reports_bad_ones(registry: RegistryClient, tag: str) -> None:
    lines, bad = lines_with_bad(tag)
    result = registry.import_traces(lines, source=tag)
    assert (result.imported_count, result.line_count, result.rejected) == (3, 5, False)
    assert {e.line for e in result.errors} == bad
    assert all(e.message for e in result.errors)
    listed = [t.name for t in registry.list_traces(source=tag)]
    assert listed == list(result.trace_names) and len(listed) == 3


def test_atomic_import_with_a_bad_line_stores_nothing(
    registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    lines, bad = lines_with_bad(tag)
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    result = registry.import_traces(path, atomic=True, source=tag)
    assert result.rejected and result.imported_count == 0
    assert {e.line for e in result.errors} == bad
    assert list(registry.list_traces(source=tag)) == []


def test_file_import_streams_small_chunks_with_progress(
    registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "good.jsonl", good_lines(12, tag))
    sent: list[int] = []
    # 100-byte chunks split every line across messages; the server must join them.
    result = registry.import_traces(path, source=tag, chunk_size=100, progress=sent.append)
    assert result.imported_count == 12 and not result.errors
    assert sum(sent) == path.stat().st_size and len(sent) > 12


def test_list_traces_pages_and_filters(registry: RegistryClient, tag: str) -> None:
    names = _import(registry, tag, 7)
    assert [t.name for t in registry.list_traces(source=tag, page_size=2)] == names
    assert len(list(registry.list_traces(source=tag, limit=3))) == 3
    counting = list(registry.list_traces(source=tag, meta={"category": "counting"}))
    assert [t.name for t in counting] == names[1::2]
    # Numbers match their JSON text.
    (third,) = registry.list_traces(meta={"tag": tag, "index": "2"})
    assert third.name == names[2]


def test_get_and_delete_a_trace(registry: RegistryClient, tag: str) -> None:
    (name,) = _import(registry, tag, 1)
    trace = registry.get_trace(name.removeprefix("traces/"))
    assert trace.name == name and trace.source == tag and len(trace.steps) == 2
    registry.delete_trace(name)
    with pytest.raises(grpc.RpcError) as caught:
        registry.get_trace(name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_dataset_from_a_filter_with_split_stats_and_export(
    registry: RegistryClient, tag: str
) -> None:
    _import(registry, tag, 8)
    dataset = registry.create_dataset(tag, source=tag, eval_fraction=0.25, seed=3)
    assert dataset.name == f"datasets/{tag}"
    stats = dataset.stats
    assert stats.trace_count == 8 and stats.train_count + stats.eval_count == 8
    assert stats.eval_count >= 1 and stats.step_type_counts["calculation"] == 8
    assert dict(stats.category_counts) == {"arithmetic": 4, "counting": 4}
    assert len(dataset.content_hash) == 64
    assert registry.get_dataset(tag) == dataset
    assert dataset.name in {d.name for d in registry.list_datasets(limit=None)}

    records = list(registry.export_dataset(tag))
    assert len(records) == 8 and all(r.HasField("trace") for r in records)
    splits = [r.split for r in records]
    # Train records come first.
    assert splits == sorted(splits) and splits.count(dataset_pb2.DATASET_SPLIT_EVAL) == (
        stats.eval_count
    )
    sft = list(
        registry.export_dataset(
            tag,
            split=dataset_pb2.DATASET_SPLIT_TRAIN,
            format=dataset_pb2.EXPORT_FORMAT_SFT,
            chat_template="chatml",
        )
    )
    assert len(sft) == stats.train_count
    assert all(r.sft_example.prompt and "Answer:" in r.sft_example.target for r in sft)


def test_same_request_id_creates_one_dataset(registry: RegistryClient, tag: str) -> None:
    names = _import(registry, tag, 3)
    first = registry.create_dataset(tag, trace_names=names[::-1], request_id=tag)
    again = registry.create_dataset(tag, trace_names=names[::-1], request_id=tag)
    assert first == again and first.stats.trace_count == 3
    exported = [r.trace.name for r in registry.export_dataset(tag)]
    assert sorted(exported) == sorted(names)
    with pytest.raises(grpc.RpcError) as caught:
        registry.create_dataset(tag, trace_names=names)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_bad_dataset_id_is_invalid_argument_naming_the_field(registry: RegistryClient) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        registry.create_dataset("-not-an-id")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "dataset_id" in {field for field, _ in field_violations(caught.value)}


def test_artifact_upload_dedup_and_verified_download(
    registry: RegistryClient, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several 1 MiB chunks and a short one
    sha256 = hashlib.sha256(data).hexdigest()
    uploaded = registry.upload_artifact(data, content_type="application/octet-stream")
    assert uploaded.artifact.name == f"artifacts/{sha256}" and not uploaded.deduplicated
    assert uploaded.artifact.size_bytes == len(data)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert registry.upload_artifact(path).deduplicated
    dest = tmp_path / "downloaded.bin"
    got: list[int] = []
    artifact = registry.download_artifact(sha256, dest, progress=got.append)
    assert artifact.sha256 == sha256 and dest.read_bytes() == data and sum(got) == len(data)
    assert not dest.with_name("downloaded.bin.part").exists()


def _version(registry: RegistryClient, model: str, artifact: str, **metrics: float) -> int:
    response: pb.CreateModelVersionResponse = registry.stub.CreateModelVersion(
        pb.CreateModelVersionRequest(
            parent=f"models/{model}",
            model_version=model_pb2.ModelVersion(artifact=artifact, metrics=metrics),
        ),
        timeout=30,
    )
    return response.model_version.version


def test_model_versions_aliases_and_resolution(registry: RegistryClient, tag: str) -> None:
    artifact = registry.upload_artifact(tag.encode()).artifact.name
    assert [_version(registry, tag, artifact) for _ in range(2)] == [1, 2]
    assert f"models/{tag}" in {m.name for m in registry.list_models(limit=None)}
    assert [v.version for v in registry.list_model_versions(tag)] == [2, 1]
    assert registry.get_model_version(f"{tag}/1").artifact == artifact

    assert registry.set_alias(tag, "production", 1).previous_version == 0
    assert registry.resolve(f"{tag}@production").version == 1
    moved = registry.set_alias(tag, "production", 2)
    assert moved.previous_version == 1 and moved.model.aliases["production"] == 2
    assert registry.resolve(tag).version == 2
    assert "production" not in registry.delete_alias(tag, "production").aliases
    with pytest.raises(grpc.RpcError) as caught:
        registry.resolve(f"{tag}@production")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_leaderboard_ranks_versions_best_first(registry: RegistryClient, tag: str) -> None:
    _import(registry, tag, 4)
    registry.create_dataset(tag, source=tag)
    artifact = registry.upload_artifact(tag.encode()).artifact.name
    scores = {1: 0.25, 2: 0.75, 3: 0.5}
    for version, score in scores.items():
        assert _version(registry, tag, artifact) == version
        registry.stub.CreateEvaluation(
            pb.CreateEvaluationRequest(
                evaluation=evaluation_pb2.Evaluation(
                    model_version=f"models/{tag}/versions/{version}",
                    dataset=f"datasets/{tag}",
                    metrics={"answer_accuracy": score},
                )
            ),
            timeout=30,
        )
    best = [e.model_version for e in registry.leaderboard(tag, "answer_accuracy")]
    assert best == [f"models/{tag}/versions/{v}" for v in (2, 3, 1)]
    worst = registry.leaderboard(tag, "answer_accuracy", lower_is_better=True, limit=1)
    assert [e.value for e in worst] == [0.25]
    assert len(list(registry.list_evaluations(model=tag, dataset=tag))) == 3
