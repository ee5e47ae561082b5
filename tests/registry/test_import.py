"""ImportTraces (client streaming) through the real server: the shipped training set, small files
in the original tunix-rt's trace formats (tests/fixtures), and bad lines reported by number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.registry.conftest import ImportedFile
from tests.registry.helpers import (
    DEV_V2_FIXTURE,
    E2E_FIXTURE,
    SELF_CORRECT_FIXTURE,
    SHIPPED_TRACES,
    Stub,
    by_source,
    import_data,
    import_requests,
    jsonl,
    list_all_traces,
    read_rows,
    row,
    rpc_error,
    trace_row,
    unique,
)
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import trace_pb2


def test_all_train_rows_import_unchanged(stub: Stub, train_import: ImportedFile) -> None:
    response, rows = train_import.response, train_import.rows
    assert len(rows) == 2000
    assert response.imported_count == 2000
    assert response.line_count == 2000
    assert list(response.errors) == []
    assert not response.rejected
    assert len(set(response.trace_names)) == 2000

    stored = list_all_traces(stub, by_source(train_import.source))
    assert [t.name for t in stored] == list(response.trace_names)  # line order
    assert [trace_row(t) for t in stored] == rows  # every row, every field, unchanged
    assert {t.source for t in stored} == {train_import.source}


@pytest.mark.parametrize("line", [1, 2, 1000, 2000])
def test_train_rows_field_by_field(stub: Stub, train_import: ImportedFile, line: int) -> None:
    expected = train_import.rows[line - 1]
    trace = stub.GetTrace(
        pb.GetTraceRequest(name=train_import.response.trace_names[line - 1])
    ).trace
    assert trace.trace_version == expected["trace_version"]
    assert trace.prompt == expected["prompt"]
    assert trace.final_answer == expected["final_answer"]
    assert [(s.i, s.type, s.content) for s in trace.steps] == [
        (s["i"], s["type"], s["content"]) for s in expected["steps"]
    ]
    assert trace_row(trace)["meta"] == expected["meta"]
    assert trace.meta["index"] == expected["meta"]["index"]


def test_numeric_meta_of_the_file_filters(stub: Stub, train_import: ImportedFile) -> None:
    flt = trace_pb2.TraceFilter(
        source=train_import.source, meta=[trace_pb2.MetaCondition(key="index", value="13")]
    )
    expected = [
        name
        for name, r in zip(train_import.response.trace_names, train_import.rows, strict=True)
        if r["meta"].get("index") == 13
    ]
    assert expected
    assert [t.name for t in list_all_traces(stub, flt)] == expected


def test_chunks_split_at_arbitrary_bytes_give_the_same_traces(stub: Stub) -> None:
    # The first rows of the train set (its `÷` is two bytes, so 7-byte chunks split characters).
    data = b"".join(SHIPPED_TRACES.read_bytes().splitlines(keepends=True)[:12])
    assert "÷".encode() in data
    whole = import_data(stub, data, source=unique("whole"))
    split = import_data(stub, data, source=unique("split"), chunk=7)
    assert split.imported_count == whole.imported_count == 12
    assert split.line_count == 12
    hashes = [
        [stub.GetTrace(pb.GetTraceRequest(name=n)).trace.content_hash for n in response.trace_names]
        for response in (whole, split)
    ]
    assert hashes[0] == hashes[1]


def test_whole_file_in_odd_sized_chunks(stub: Stub, train_import: ImportedFile) -> None:
    source = unique("chunks")
    response = import_data(stub, SHIPPED_TRACES.read_bytes(), source=source, chunk=4093)
    assert response.imported_count == 2000
    assert [trace_row(t) for t in list_all_traces(stub, by_source(source))] == train_import.rows


def test_bad_lines_are_reported_by_number_and_good_ones_stored(stub: Stub) -> None:
    source = unique("badlines")
    lines = [
        json.dumps(row(prompt="good 1")),  # 1
        "{not json",  # 2
        json.dumps(row(prompt="good 2")),  # 3
        json.dumps({k: v for k, v in row().items() if k != "final_answer"}),  # 4: missing field
        "",  # 5: blank, skipped
        json.dumps(row(steps=[{"i": 0, "type": "t" * 65, "content": "c"}])),  # 6: limit
        json.dumps(row(prompt="good 3")),  # 7
        "[1, 2, 3]",  # 8: not an object
        json.dumps(row(steps=[{"i": 0, "type": "s", "content": "c" * 20_001}])),  # 9
        json.dumps(row(extra="field")),  # 10: unknown field
    ]
    response = import_data(stub, "\n".join(lines).encode() + b"\n", source=source)
    assert response.line_count == 9
    assert response.imported_count == 3
    assert not response.rejected
    reported = [(e.line, e.field) for e in response.errors]
    assert reported == [
        (2, "line"),
        (4, "final_answer"),
        (6, "steps[0].type"),
        (8, "trace"),
        (9, "steps[0].content"),
        (10, "extra"),
    ]
    assert all(e.message for e in response.errors)
    stored = list_all_traces(stub, by_source(source))
    assert [t.prompt for t in stored] == ["good 1", "good 2", "good 3"]
    assert [t.name for t in stored] == list(response.trace_names)


def test_lines_that_no_database_could_store_are_reported(stub: Stub) -> None:
    source = unique("unstorable")
    good = json.dumps(row(prompt="fine")).encode()
    lines = [
        good,  # 1
        b'{"trace_version": "1", "prompt": "\\ud800", "final_answer": "a",'
        b' "steps": [{"i": 0, "type": "s", "content": "c"}]}',  # 2: a lone surrogate
        json.dumps(row(meta={"x": float("nan")})).encode(),  # 3: NaN is not JSON
        json.dumps(row(meta={"x": float("inf")})).encode(),  # 4
        json.dumps(row(steps=[{"i": 2**31, "type": "s", "content": "c"}])).encode(),  # 5
        b"\xff\xfe not utf-8",  # 6
        json.dumps(row(prompt="nul \x00 inside")).encode(),  # 7
        json.dumps(row(prompt="fine too")).encode(),  # 8 (another trace: a repeat of 1 is not)
    ]
    response = import_data(stub, b"\n".join(lines), source=source)
    assert [(e.line, e.field) for e in response.errors] == [
        (2, "prompt"),
        (3, "meta.x"),
        (4, "meta.x"),
        (5, "steps[0].i"),
        (6, "line"),
        (7, "prompt"),
    ]
    assert response.imported_count == 2
    # Everything stored can be read back (nothing poisons a later List).
    assert len(list_all_traces(stub, by_source(source))) == 2


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_hostile_lines_are_reported_by_number_and_good_ones_stored(stub: Stub) -> None:
    # Issue 10, finding 4: these lost the whole import (INTERNAL) with no line number.
    source = unique("hostile")
    good = json.dumps(row(prompt="fine")).encode()
    lines = [
        good,  # 1
        b'{"meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # 2: past the recursion limit
        json.dumps(row(meta={"n": 0})).replace('"n": 0', '"n": ' + "9" * 4301).encode(),  # 3
        json.dumps(row(steps=[{"i": 0, "type": "s", "content": "c"}]))
        .replace('"i": 0', '"i": ' + "1" * 5000)
        .encode(),  # 4
        json.dumps(row(meta=_nested(500))).encode(),  # 5: parses, but no reader could
        json.dumps(row(meta=_nested(21))).encode(),  # 6: one level past the limit
        json.dumps(row(prompt="deep enough", meta=_nested(20))).encode(),  # 7: at the limit
        json.dumps(row(prompt="fine again")).encode(),  # 8 (another trace: a repeat of 1 is not)
    ]
    response = import_data(stub, b"\n".join(lines), source=source)
    assert [(e.line, e.field) for e in response.errors] == [
        (2, "line"),
        (3, "line"),
        (4, "line"),
        (5, "meta" + ".a" * 20),
        (6, "meta" + ".a" * 20),
    ]
    assert all(len(e.message) < 500 for e in response.errors)
    assert response.imported_count == 3
    stored = list_all_traces(stub, by_source(source))  # everything stored reads back
    assert [t.prompt for t in stored] == ["fine", "deep enough", "fine again"]
    assert trace_row(stored[1])["meta"] == _nested(20)


def test_atomic_import_with_a_bad_line_stores_nothing(stub: Stub) -> None:
    source = unique("atomic")
    data = jsonl([row(prompt="a"), row(prompt=""), row(prompt="c")])
    response = import_data(stub, data, source=source, atomic=True)
    assert response.rejected
    assert response.imported_count == 0
    assert list(response.trace_names) == []
    assert [(e.line, e.field) for e in response.errors] == [(2, "prompt")]
    assert list_all_traces(stub, by_source(source)) == []


def test_atomic_import_of_good_lines_stores_them_all(stub: Stub) -> None:
    source = unique("atomicok")
    response = import_data(stub, jsonl([row(prompt=f"q{n}") for n in range(4)]), source=source)
    assert not response.rejected
    assert response.imported_count == 4
    assert len(list_all_traces(stub, by_source(source))) == 4


def test_blank_lines_are_skipped_and_not_counted(stub: Stub) -> None:
    source = unique("blank")
    a, b = json.dumps(row(prompt="a")), json.dumps(row(prompt="b"))
    data = f"\n\n{a}\r\n   \n\t\n{b}".encode()  # CRLF, whitespace-only lines, no final newline
    response = import_data(stub, data, source=source)
    assert response.line_count == 2
    assert response.imported_count == 2
    assert list(response.errors) == []
    assert [t.prompt for t in list_all_traces(stub, by_source(source))] == ["a", "b"]


def test_blank_lines_keep_line_numbers(stub: Stub) -> None:
    data = b"\n\n" + json.dumps(row(prompt="")).encode() + b"\n"
    response = import_data(stub, data, source=unique("blanknum"))
    assert [e.line for e in response.errors] == [3]


def test_empty_import(stub: Stub) -> None:
    source = unique("empty")
    response = stub.ImportTraces(
        iter([pb.ImportTracesRequest(options=pb.ImportOptions(source=source))])
    )
    assert (response.imported_count, response.line_count, len(response.errors)) == (0, 0, 0)
    response = stub.ImportTraces(iter([]))
    assert response.imported_count == 0


def test_import_with_request_id_is_idempotent(stub: Stub) -> None:
    source = unique("importidem")
    data = jsonl([row(prompt=f"q{n}") for n in range(3)])
    request_id = unique("req")
    first = stub.ImportTraces(import_requests(data, source=source, request_id=request_id))
    second = stub.ImportTraces(import_requests(data, source=source, request_id=request_id))
    assert list(first.trace_names) == list(second.trace_names)
    assert len(list_all_traces(stub, by_source(source))) == 3
    other = jsonl([row(prompt="different")])
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.ImportTraces(import_requests(other, source=source, request_id=request_id)),
    )
    assert "request_id" in (err.details() or "")


def test_options_are_read_from_the_first_message_only(stub: Stub) -> None:
    source, later = unique("first"), unique("later")
    requests = [
        pb.ImportTracesRequest(options=pb.ImportOptions(source=source)),
        pb.ImportTracesRequest(
            options=pb.ImportOptions(source=later, atomic=True), data=jsonl([row(), row(prompt="")])
        ),
    ]
    response = stub.ImportTraces(iter(requests))
    assert not response.rejected
    assert response.imported_count == 1
    assert len(list_all_traces(stub, by_source(source))) == 1
    assert list_all_traces(stub, by_source(later)) == []


@pytest.mark.parametrize(
    ("path", "count"), [(DEV_V2_FIXTURE, 8), (SELF_CORRECT_FIXTURE, 4), (E2E_FIXTURE, 3)]
)
def test_files_in_the_original_formats_import_unchanged(stub: Stub, path: Path, count: int) -> None:
    rows: list[dict[str, Any]] = read_rows(path)
    source = unique("original")
    response = import_data(stub, path.read_bytes(), source=source)
    assert (response.imported_count, response.line_count) == (count, count)
    assert list(response.errors) == []
    stored = list_all_traces(stub, by_source(source))
    assert [t.name for t in stored] == list(response.trace_names)  # line order
    assert [trace_row(t) for t in stored] == rows  # every row, every field, unchanged
    if path == SELF_CORRECT_FIXTURE:  # self-correction traces keep their verify / correct steps
        assert {"verify", "correct"} <= {s.type for t in stored for s in t.steps}
        assert all(t.meta["m46_transformed"] is True for t in stored)
