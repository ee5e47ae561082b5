"""Datasets through the real server: creation from a filter or names, the seeded split, stats,
content hashes, listing, export (raw and SFT with each chat template) and deletion."""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter
from typing import Any

import grpc
import pytest

from tests.registry.conftest import ImportedFile
from tests.registry.helpers import (
    SHIPPED_TRACES,
    Stub,
    bad_request_fields,
    by_source,
    error_reason,
    import_data,
    make_trace,
    race,
    resource_info,
    rpc_error,
    unique,
)
from tunix_rt.v1 import dataset_pb2, trace_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

TRAIN, EVAL = dataset_pb2.DATASET_SPLIT_TRAIN, dataset_pb2.DATASET_SPLIT_EVAL


def create_from_filter(
    stub: Stub, source: str, *, fraction: float | None = None, seed: int = 0, **kw: Any
) -> dataset_pb2.Dataset:
    request = pb.CreateDatasetRequest(dataset_id=unique("ds"), filter=by_source(source), **kw)
    if fraction is not None:
        request.split.CopyFrom(dataset_pb2.SplitConfig(eval_fraction=fraction, seed=seed))
    dataset: dataset_pb2.Dataset = stub.CreateDataset(request).dataset
    return dataset


def create_from_names(
    stub: Stub, names: list[str], *, fraction: float = 0.1, seed: int = 0
) -> dataset_pb2.Dataset:
    dataset: dataset_pb2.Dataset = stub.CreateDataset(
        pb.CreateDatasetRequest(
            dataset_id=unique("ds"),
            trace_names=pb.TraceNames(names=names),
            split=dataset_pb2.SplitConfig(eval_fraction=fraction, seed=seed),
        )
    ).dataset
    return dataset


def export(stub: Stub, name: str, **kw: Any) -> list[dataset_pb2.DatasetRecord]:
    return [
        record
        for response in stub.ExportDataset(pb.ExportDatasetRequest(name=name, **kw))
        for record in response.records
    ]


def eval_members(stub: Stub, name: str) -> list[str]:
    return [r.trace.name for r in export(stub, name, split=EVAL)]


# Creation.


def test_create_from_filter(stub: Stub, train_import: ImportedFile) -> None:
    dataset = create_from_filter(stub, train_import.source, description="the train set")
    assert dataset.name.startswith("datasets/ds-")
    assert dataset.description == "the train set"
    assert dataset.filter.source == train_import.source
    assert dataset.split.eval_fraction == pytest.approx(0.1)  # the default
    assert dataset.stats.trace_count == 2000
    assert (dataset.stats.train_count, dataset.stats.eval_count) == (1800, 200)
    assert dataset.create_time.seconds > 0
    assert stub.GetDataset(pb.GetDatasetRequest(name=dataset.name)).dataset == dataset


def test_create_from_meta_filter(stub: Stub, train_import: ImportedFile) -> None:
    flt = trace_pb2.TraceFilter(
        source=train_import.source, meta=[trace_pb2.MetaCondition(key="category", value="string")]
    )
    dataset = stub.CreateDataset(pb.CreateDatasetRequest(dataset_id=unique("ds"), filter=flt))
    expected = sum(1 for r in train_import.rows if r["meta"].get("category") == "string")
    assert expected == 400
    assert dataset.dataset.stats.trace_count == expected
    assert dataset.dataset.stats.category_counts == {"string": expected}


def test_create_from_explicit_names_keeps_their_order(
    stub: Stub, train_import: ImportedFile
) -> None:
    names = list(train_import.response.trace_names[:12])[::-1]
    dataset = create_from_names(stub, names, fraction=0.25)
    assert dataset.stats.trace_count == 12
    assert not dataset.HasField("filter")
    records = export(stub, dataset.name)
    train = [r.trace.name for r in records if r.split == TRAIN]
    evals = [r.trace.name for r in records if r.split == EVAL]
    assert train == [n for n in names if n in set(train)]  # member order within each split
    assert evals == [n for n in names if n in set(evals)]
    assert len(evals) == 3


def test_split_is_seeded_and_reproducible(stub: Stub, train_import: ImportedFile) -> None:
    a = create_from_filter(stub, train_import.source, fraction=0.2, seed=7)
    b = create_from_filter(stub, train_import.source, fraction=0.2, seed=7)
    c = create_from_filter(stub, train_import.source, fraction=0.2, seed=8)
    eval_a, eval_b, eval_c = (eval_members(stub, d.name) for d in (a, b, c))
    assert len(eval_a) == 400
    assert eval_a == eval_b
    assert set(eval_a) != set(eval_c)
    assert a.content_hash == b.content_hash != c.content_hash


def test_zero_eval_fraction_puts_everything_in_train(
    stub: Stub, train_import: ImportedFile
) -> None:
    dataset = create_from_names(stub, list(train_import.response.trace_names[:5]), fraction=0.0)
    assert (dataset.stats.train_count, dataset.stats.eval_count) == (5, 0)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, math.nan, math.inf])
def test_eval_fraction_out_of_range_is_invalid(
    stub: Stub, train_import: ImportedFile, fraction: float
) -> None:
    dataset_id = unique("ds")
    request = pb.CreateDatasetRequest(
        dataset_id=dataset_id,
        filter=by_source(train_import.source),
        split=dataset_pb2.SplitConfig(eval_fraction=fraction),
    )
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateDataset(request))
    assert bad_request_fields(err) == ["split.eval_fraction"]
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetDataset(pb.GetDatasetRequest(name=f"datasets/{dataset_id}")),
    )


def _distribution(values: list[int]) -> tuple[float, float, float]:
    return float(min(values)), float(max(values)), statistics.fmean(values)


def test_stats_match_the_file(stub: Stub, train_import: ImportedFile) -> None:
    stats = create_from_filter(stub, train_import.source).stats
    rows = train_import.rows
    step_counts = [len(r["steps"]) for r in rows]
    prompt_chars = [len(r["prompt"]) for r in rows]
    targets = [
        "\n".join([s["content"] for s in r["steps"]] + [f"Answer: {r['final_answer']}"])
        for r in rows
    ]
    for dist, values in [
        (stats.step_count, step_counts),
        (stats.prompt_chars, prompt_chars),
        (stats.target_chars, [len(t) for t in targets]),
    ]:
        low, high, mean = _distribution(values)
        assert (dist.min, dist.max) == (low, high)
        assert dist.mean == pytest.approx(mean)
        assert low <= dist.p50 <= dist.p90 <= dist.p99 <= high
        assert dist.p50 in (statistics.median_low(values), statistics.median_high(values))
    assert dict(stats.step_type_counts) == Counter(s["type"] for r in rows for s in r["steps"])
    assert dict(stats.category_counts) == Counter(r["meta"].get("category", "") for r in rows)
    assert stats.trace_count == stats.train_count + stats.eval_count == len(rows)


def test_category_counts_count_traces_without_one_as_empty(stub: Stub) -> None:
    source = unique("nocat")
    stub.BatchCreateTraces(
        pb.BatchCreateTracesRequest(
            traces=[
                make_trace(source=source, meta={"category": "math"}),
                make_trace(source=source, meta={}),
                make_trace(source=source, meta={"other": 1}),
            ]
        )
    )
    stats = create_from_filter(stub, source).stats
    assert dict(stats.category_counts) == {"math": 1, "": 2}


# Content hashes.


def test_content_hash_follows_content_and_split(stub: Stub, train_import: ImportedFile) -> None:
    names = list(train_import.response.trace_names[:20])
    base = create_from_names(stub, names, fraction=0.2, seed=3)
    same = create_from_names(stub, names, fraction=0.2, seed=3)
    fewer = create_from_names(stub, names[:-1], fraction=0.2, seed=3)
    reordered = create_from_names(stub, names[::-1], fraction=0.2, seed=3)
    other_seed = create_from_names(stub, names, fraction=0.2, seed=4)
    other_fraction = create_from_names(stub, names, fraction=0.3, seed=3)
    assert base.content_hash == same.content_hash
    others = [fewer, reordered, other_seed, other_fraction]
    assert len({base.content_hash, *(d.content_hash for d in others)}) == 5


def test_filter_and_names_with_the_same_members_hash_alike(
    stub: Stub, train_import: ImportedFile
) -> None:
    by_filter = create_from_filter(stub, train_import.source, fraction=0.1, seed=0)
    by_names = create_from_names(stub, list(train_import.response.trace_names), fraction=0.1)
    assert by_filter.content_hash == by_names.content_hash


def test_identical_content_under_other_trace_names_hashes_alike(stub: Stub) -> None:
    data = b"".join(SHIPPED_TRACES.read_bytes().splitlines(keepends=True)[:20])
    first, second = unique("copy"), unique("copy")
    import_data(stub, data, source=first)
    import_data(stub, data, source=second)
    a = create_from_filter(stub, first, fraction=0.2, seed=1)
    b = create_from_filter(stub, second, fraction=0.2, seed=1)
    assert a.content_hash == b.content_hash
    assert eval_members(stub, a.name) != eval_members(stub, b.name)  # other traces, same content


# Bad requests.


def test_duplicate_dataset_id_already_exists_and_keeps_the_first(
    stub: Stub, train_import: ImportedFile
) -> None:
    first = create_from_names(stub, list(train_import.response.trace_names[:3]))
    dataset_id = first.name.removeprefix("datasets/")
    again = pb.CreateDatasetRequest(
        dataset_id=dataset_id,
        description="replacement",
        trace_names=pb.TraceNames(names=list(train_import.response.trace_names[3:9])),
    )
    err = rpc_error(grpc.StatusCode.ALREADY_EXISTS, lambda: stub.CreateDataset(again))
    assert resource_info(err).resource_name == first.name
    assert stub.GetDataset(pb.GetDatasetRequest(name=first.name)).dataset == first
    assert len(export(stub, first.name)) == 3


@pytest.mark.parametrize(
    "dataset_id", ["", "-leading", ".hidden", "a/b", "..", "has space", "x" * 129, "名前", "a\x00"]
)
def test_bad_dataset_id_is_invalid(stub: Stub, train_import: ImportedFile, dataset_id: str) -> None:
    request = pb.CreateDatasetRequest(dataset_id=dataset_id, filter=by_source(train_import.source))
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateDataset(request))
    assert bad_request_fields(err) == ["dataset_id"]


def test_unknown_trace_is_not_found_and_nothing_is_created(
    stub: Stub, train_import: ImportedFile
) -> None:
    dataset_id = unique("ds")
    missing = "traces/" + "0" * 32
    request = pb.CreateDatasetRequest(
        dataset_id=dataset_id,
        trace_names=pb.TraceNames(names=[train_import.response.trace_names[0], missing]),
    )
    err = rpc_error(grpc.StatusCode.NOT_FOUND, lambda: stub.CreateDataset(request))
    assert resource_info(err).resource_name == missing
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetDataset(pb.GetDatasetRequest(name=f"datasets/{dataset_id}")),
    )


def test_malformed_and_duplicate_trace_names_are_invalid(
    stub: Stub, train_import: ImportedFile
) -> None:
    good = train_import.response.trace_names[0]
    malformed = pb.CreateDatasetRequest(
        dataset_id=unique("ds"), trace_names=pb.TraceNames(names=[good, "traces/nope"])
    )
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateDataset(malformed))
    assert bad_request_fields(err) == ["trace_names.names[1]"]
    duplicate = pb.CreateDatasetRequest(
        dataset_id=unique("ds"), trace_names=pb.TraceNames(names=[good, good])
    )
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateDataset(duplicate))
    assert bad_request_fields(err) == ["trace_names.names[1]"]
    empty = pb.CreateDatasetRequest(dataset_id=unique("ds"), trace_names=pb.TraceNames())
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateDataset(empty))
    assert bad_request_fields(err) == ["trace_names.names"]


def test_filter_matching_nothing_is_a_failed_precondition(stub: Stub) -> None:
    request = pb.CreateDatasetRequest(dataset_id=unique("ds"), filter=by_source(unique("none")))
    err = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: stub.CreateDataset(request))
    assert error_reason(err) == "EMPTY_DATASET"


def test_a_source_of_members_is_required(stub: Stub) -> None:
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateDataset(pb.CreateDatasetRequest(dataset_id=unique("ds"))),
    )
    assert bad_request_fields(err) == ["source"]


def test_get_unknown_dataset_is_not_found(stub: Stub) -> None:
    err = rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetDataset(pb.GetDatasetRequest(name="datasets/never-made")),
    )
    assert resource_info(err).resource_name == "datasets/never-made"


def test_create_with_request_id_is_idempotent(stub: Stub, train_import: ImportedFile) -> None:
    dataset_id, request_id = unique("ds"), unique("req")
    names = pb.TraceNames(names=list(train_import.response.trace_names[:4]))
    request = pb.CreateDatasetRequest(
        dataset_id=dataset_id, trace_names=names, request_id=request_id
    )
    first = stub.CreateDataset(request).dataset
    assert stub.CreateDataset(request).dataset == first  # not ALREADY_EXISTS
    request.description = "changed"
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.CreateDataset(request))
    assert bad_request_fields(err) == ["request_id"]


# Listing.


def test_list_datasets_pages_through_all(stub: Stub, train_import: ImportedFile) -> None:
    mine = [create_from_names(stub, [train_import.response.trace_names[n]]).name for n in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListDatasets(pb.ListDatasetsRequest(page_size=2, page_token=token))
        assert len(page.datasets) <= 2
        seen.extend(d.name for d in page.datasets)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert [n for n in seen if n in mine] == mine  # oldest first
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ListDatasets(pb.ListDatasetsRequest(page_token="nope")),
    )
    assert bad_request_fields(err) == ["page_token"]


# Export.


def test_raw_export_streams_every_trace_once_train_then_eval(
    stub: Stub, train_import: ImportedFile
) -> None:
    dataset = create_from_filter(stub, train_import.source, fraction=0.2, seed=5)
    records = export(stub, dataset.name, format=dataset_pb2.EXPORT_FORMAT_RAW)
    names = [r.trace.name for r in records]
    assert sorted(names) == sorted(train_import.response.trace_names)
    assert [r.index for r in records] == list(range(2000))
    splits = [r.split for r in records]
    assert splits == [TRAIN] * dataset.stats.train_count + [EVAL] * dataset.stats.eval_count
    # The per-split exports agree with the labels.
    assert [r.trace.name for r in export(stub, dataset.name, split=TRAIN)] == names[:1600]
    assert eval_members(stub, dataset.name) == names[1600:]
    assert export(stub, dataset.name, split=dataset_pb2.DATASET_SPLIT_ALL) == records
    # Raw records are the stored traces.
    first = stub.GetTrace(pb.GetTraceRequest(name=names[0])).trace
    assert records[0].trace == first


TEMPLATE_MARKERS = {
    "plain": ["Question: ", "Reasoning:"],
    "chatml": ["<|im_start|>user\n", "<|im_end|>", "<|im_start|>assistant\n"],
    "llama3": ["<|start_header_id|>user<|end_header_id|>", "<|eot_id|>", "assistant"],
    "gemma": ["<start_of_turn>user\n", "<end_of_turn>", "<start_of_turn>model\n"],
}


@pytest.mark.parametrize("template", sorted(TEMPLATE_MARKERS))
def test_sft_export_renders_each_chat_template(
    stub: Stub, train_import: ImportedFile, template: str
) -> None:
    rows = dict(zip(train_import.response.trace_names, train_import.rows, strict=True))
    names = list(train_import.response.trace_names[:6])
    dataset = create_from_names(stub, names, fraction=0.34)
    records = export(
        stub, dataset.name, format=dataset_pb2.EXPORT_FORMAT_SFT, chat_template=template
    )
    assert sorted(r.sft_example.trace for r in records) == sorted(names)
    for record in records:
        example = record.sft_example
        assert example.split == record.split
        source = rows[example.trace]
        assert source["prompt"] in example.prompt
        for marker in TEMPLATE_MARKERS[template]:
            assert marker in example.prompt
        assert example.prompt.index(source["prompt"]) > 0  # the template wraps the prompt
        steps = [s["content"] for s in source["steps"]]
        assert example.target == "\n".join(steps) + f"\nAnswer: {source['final_answer']}"
        assert example.answer == source["final_answer"]


def test_sft_answer_is_the_final_answer_as_given(stub: Stub) -> None:
    """The answer comes apart from the target, so one that itself reads "Answer: ..." or spans
    lines is given whole, not as a parse of the target's last `Answer: `."""
    answer = "Answer: 5\nbecause 2 + 3 = 5"
    created = stub.CreateTrace(
        pb.CreateTraceRequest(trace=make_trace(source=unique("sft"), final_answer=answer))
    ).trace
    dataset = create_from_names(stub, [created.name], fraction=0.0)
    (record,) = export(stub, dataset.name, format=dataset_pb2.EXPORT_FORMAT_SFT)
    assert record.sft_example.answer == answer
    assert record.sft_example.target.endswith(f"\nAnswer: {answer}")


def test_sft_export_defaults_to_plain(stub: Stub, train_import: ImportedFile) -> None:
    dataset = create_from_names(stub, list(train_import.response.trace_names[:2]))
    default = export(stub, dataset.name, format=dataset_pb2.EXPORT_FORMAT_SFT)
    plain = export(stub, dataset.name, format=dataset_pb2.EXPORT_FORMAT_SFT, chat_template="plain")
    assert default == plain
    assert default[0].sft_example.prompt.startswith("Question: ")


def test_unknown_chat_template_is_invalid(stub: Stub, train_import: ImportedFile) -> None:
    dataset = create_from_names(stub, list(train_import.response.trace_names[:2]))
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: export(
            stub, dataset.name, format=dataset_pb2.EXPORT_FORMAT_SFT, chat_template="mistral"
        ),
    )
    assert bad_request_fields(err) == ["chat_template"]


def test_export_of_unknown_dataset_or_split(stub: Stub, train_import: ImportedFile) -> None:
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: export(stub, "datasets/" + unique("none")))
    dataset = create_from_names(stub, list(train_import.response.trace_names[:2]))
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: export(stub, dataset.name, split=9))
    assert bad_request_fields(err) == ["split"]


# Delete.


def test_delete_dataset_keeps_its_traces(stub: Stub) -> None:
    source = unique("deleteds")
    traces = stub.BatchCreateTraces(
        pb.BatchCreateTracesRequest(traces=[make_trace(source=source) for _ in range(3)])
    ).traces
    dataset = create_from_filter(stub, source)
    stub.DeleteDataset(pb.DeleteDatasetRequest(name=dataset.name))
    rpc_error(
        grpc.StatusCode.NOT_FOUND, lambda: stub.GetDataset(pb.GetDatasetRequest(name=dataset.name))
    )
    rpc_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.DeleteDataset(pb.DeleteDatasetRequest(name=dataset.name)),
    )
    rpc_error(grpc.StatusCode.NOT_FOUND, lambda: export(stub, dataset.name))
    for trace in traces:
        assert stub.GetTrace(pb.GetTraceRequest(name=trace.name)).trace == trace
    # The id is free again.
    again = stub.CreateDataset(
        pb.CreateDatasetRequest(
            dataset_id=dataset.name.removeprefix("datasets/"), filter=by_source(source)
        )
    ).dataset
    assert again.content_hash == dataset.content_hash


def test_concurrent_creates_of_one_dataset_id(stub: Stub, train_import: ImportedFile) -> None:
    dataset_id = unique("ds")
    names = pb.TraceNames(names=list(train_import.response.trace_names[:3]))
    outcomes = race(
        6,
        lambda _n: stub.CreateDataset(
            pb.CreateDatasetRequest(dataset_id=dataset_id, trace_names=names)
        ),
    )
    assert outcomes == {"OK": 1, "ALREADY_EXISTS": 5}
    assert len(export(stub, f"datasets/{dataset_id}")) == 3


def test_clients_cancelling_an_export_mid_stream_leave_the_server_serving(
    stub: Stub, train_import: ImportedFile, caplog: pytest.LogCaptureFixture
) -> None:
    # grpc.aio 1.85 frees a cancelled call before the handler's generator is closed; the server
    # used to ask that call for its peer (to log the RPC at INFO, as served processes do) and
    # its deadline then, and crashed with a segfault within a few dozen cancellations.
    caplog.set_level(logging.INFO, logger="tunix_rt.rpc")
    dataset = create_from_filter(stub, train_import.source, fraction=0.2, seed=5)
    request = pb.ExportDatasetRequest(name=dataset.name, format=dataset_pb2.EXPORT_FORMAT_RAW)
    for _ in range(60):
        stream = stub.ExportDataset(request, timeout=30)
        next(iter(stream))
        stream.cancel()
    assert len(export(stub, dataset.name, format=dataset_pb2.EXPORT_FORMAT_RAW)) == 2000
