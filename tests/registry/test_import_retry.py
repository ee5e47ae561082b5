"""Retried and large imports through the real registry and the real CLI (issue 10, finding 2).

An import adds to its source only the traces the source does not hold yet (same content hash), so
running `tunix-rt traces import` again — the natural retry after a dropped connection, whether the
first run stored everything, part of it or nothing — leaves exactly one copy of every trace, and
the summary says how many were new. Imports stream: the registry stores the good lines in batches
as they arrive, so a file of any number of lines imports with bounded memory on both sides.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner, Result

from tests.registry.helpers import (
    SHIPPED_TRACES,
    Stub,
    by_source,
    import_data,
    import_requests,
    jsonl,
    list_all_traces,
    race,
    read_rows,
    row,
    rpc_error,
    trace_row,
    unique,
)
from tunix_rt.client.cli import main
from tunix_rt.registry import traces as tr
from tunix_rt.registry.server import RunningRegistry
from tunix_rt.v1 import registry_service_pb2 as pb

SHIPPED = 2000  # lines (and distinct traces) of datasets/reasoning-train-v1.jsonl
LARGE = 30_000  # lines of the generated file: three times what one transaction may store


def cli(server: RunningRegistry, *args: str | Path) -> Result:
    """`tunix-rt --registry ADDR ARGS…`, in-process, as a user runs it."""
    argv = ["--registry", str(server.address), *(str(a) for a in args)]
    return CliRunner().invoke(main, argv)


def import_summary(server: RunningRegistry, path: Path, source: str) -> str:
    result = cli(server, "traces", "import", path, "--source", source)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout.strip()


def assert_each_trace_once(stub: Stub, source: str, rows: list[dict[str, object]]) -> None:
    """The source holds every row exactly once, in the rows' order, unchanged."""
    stored = list_all_traces(stub, by_source(source))
    copies = Counter(t.content_hash for t in stored)
    assert len(stored) == len(rows), copies.most_common(3)
    assert set(copies.values()) == {1}
    assert [trace_row(t) for t in stored] == rows


def settled_count(stub: Stub, source: str) -> int:
    """How many traces the source holds once the count stops changing: a batch of a cancelled
    import that was being written when the call ended still commits."""
    count = -1
    while (now := len(list_all_traces(stub, by_source(source)))) != count:
        count = now
        time.sleep(0.3)
    return count


@pytest.fixture(scope="module")
def shipped_rows() -> list[dict[str, object]]:
    return read_rows(SHIPPED_TRACES)


def test_importing_the_shipped_file_twice_stores_it_once(
    registry_server: RunningRegistry, stub: Stub, shipped_rows: list[dict[str, object]]
) -> None:
    source = unique("twice")
    first = import_summary(registry_server, SHIPPED_TRACES, source)
    assert first == f"imported {SHIPPED} of {SHIPPED} traces; {SHIPPED} new, 0 already present"
    again = import_summary(registry_server, SHIPPED_TRACES, source)
    assert again == f"imported {SHIPPED} of {SHIPPED} traces; 0 new, {SHIPPED} already present"
    assert_each_trace_once(stub, source, shipped_rows)


def test_json_summary_counts_new_traces(registry_server: RunningRegistry, tmp_path: Path) -> None:
    source = unique("json")
    path = tmp_path / "three.jsonl"
    path.write_bytes(jsonl([row(prompt=f"q{n}") for n in range(3)]))
    runs = [cli(registry_server, "traces", "import", path, "--source", source, "--json")]
    runs.append(cli(registry_server, "traces", "import", path, "--source", source, "--json"))
    first, second = (json.loads(r.stdout) for r in runs)
    assert (first["imported_count"], first["new_count"]) == ("3", "3")  # int64: JSON strings
    assert (second["imported_count"], second["new_count"]) == ("3", "0")
    assert second["trace_names"] == first["trace_names"]


def test_the_rest_of_a_file_after_a_partial_import_is_stored_once(
    registry_server: RunningRegistry,
    stub: Stub,
    shipped_rows: list[dict[str, object]],
    tmp_path: Path,
) -> None:
    # The first run got through 700 lines (say the connection dropped); the user imports the
    # whole file again.
    source = unique("partial")
    part = tmp_path / "part.jsonl"
    with SHIPPED_TRACES.open("rb") as lines, part.open("wb") as out:
        out.writelines(line for _, line in zip(range(700), lines, strict=False))
    assert import_summary(registry_server, part, source) == (
        "imported 700 of 700 traces; 700 new, 0 already present"
    )
    assert import_summary(registry_server, SHIPPED_TRACES, source) == (
        f"imported {SHIPPED} of {SHIPPED} traces; {SHIPPED - 700} new, 700 already present"
    )
    assert_each_trace_once(stub, source, shipped_rows)


def test_an_import_cut_off_midstream_then_retried_stores_every_trace_once(
    stub: Stub, shipped_rows: list[dict[str, object]]
) -> None:
    # The client dies after sending three quarters of the file: the registry has stored whatever
    # batches it completed by then (some, all or none); the retry stores the rest.
    source = unique("cut")
    data = SHIPPED_TRACES.read_bytes()
    chunk = 64 * 1024

    def cut_off() -> Iterator[pb.ImportTracesRequest]:
        sent = 0
        for request in import_requests(data, source=source, chunk=chunk):
            if sent > len(data) * 3 // 4:
                raise ConnectionError("the client died")
            sent += len(request.data)
            yield request

    with pytest.raises(grpc.RpcError):
        stub.ImportTraces(cut_off())
    kept = settled_count(stub, source)
    retry = import_data(stub, data, source=source, chunk=chunk)
    assert retry.imported_count == SHIPPED and retry.line_count == SHIPPED
    assert list(retry.errors) == []
    assert retry.new_count == SHIPPED - kept
    assert_each_trace_once(stub, source, shipped_rows)
    assert [t.name for t in list_all_traces(stub, by_source(source))] == list(retry.trace_names)


def test_concurrent_imports_of_one_file_store_it_once(
    stub: Stub, shipped_rows: list[dict[str, object]]
) -> None:
    # A retry while the first attempt is still being stored (its client gave up, the registry
    # did not): both find what the other committed, never both a trace missing.
    source = unique("concurrent")
    data = SHIPPED_TRACES.read_bytes()
    responses: list[pb.ImportTracesResponse] = []

    def run(n: int) -> None:
        responses.append(import_data(stub, data, source=source, chunk=64 * 1024))

    assert race(3, run) == {"OK": 3}
    assert sum(r.new_count for r in responses) == SHIPPED
    assert len({tuple(r.trace_names) for r in responses}) == 1
    assert_each_trace_once(stub, source, shipped_rows)


def test_repeated_lines_of_one_file_are_one_trace(stub: Stub) -> None:
    source = unique("repeat")
    a, b = row(prompt="a"), row(prompt="b")
    response = import_data(stub, jsonl([a, b, a, a]), source=source)
    assert (response.imported_count, response.new_count) == (4, 2)
    names = list(response.trace_names)
    assert names[0] == names[2] == names[3] != names[1]
    assert [t.prompt for t in list_all_traces(stub, by_source(source))] == ["a", "b"]


def test_the_same_trace_under_another_source_is_new(stub: Stub) -> None:
    data = jsonl([row(prompt="shared")])
    first = import_data(stub, data, source=unique("one"))
    other = import_data(stub, data, source=unique("two"))
    assert first.new_count == other.new_count == 1
    assert first.trace_names != other.trace_names


def test_a_repeated_atomic_import_stores_nothing_twice(stub: Stub) -> None:
    source = unique("atomicagain")
    data = jsonl([row(prompt=f"q{n}") for n in range(5)])
    first = import_data(stub, data, source=source, atomic=True)
    again = import_data(stub, data, source=source, atomic=True)
    assert (first.new_count, again.new_count) == (5, 0)
    assert list(again.trace_names) == list(first.trace_names)
    assert len(list_all_traces(stub, by_source(source))) == 5


def test_atomic_import_larger_than_one_transaction_is_refused_clearly(stub: Stub) -> None:
    source = unique("atomicbig")
    data = jsonl(row(prompt=f"q{n}") for n in range(tr.MAX_BATCH_TRACES + 1))
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: import_data(stub, data, source=source, atomic=True),
    )
    assert f"at most {tr.MAX_BATCH_TRACES:,}" in (err.details() or "")
    assert list_all_traces(stub, by_source(source)) == []


def test_a_line_past_the_line_limit_is_reported_and_the_rest_stored(stub: Stub) -> None:
    # Valid JSON once its padding is skipped, but no line is held past tr.MAX_LINE_BYTES.
    source = unique("longline")
    padded = b" " * tr.MAX_LINE_BYTES + json.dumps(row(prompt="padded")).encode()
    data = jsonl([row(prompt="before")]) + padded + b"\n" + jsonl([row(prompt="after")])
    response = import_data(stub, data, source=source, chunk=1 << 20)
    assert [(e.line, e.field) for e in response.errors] == [(2, "line")]
    assert "8 MiB" in response.errors[0].message
    assert [t.prompt for t in list_all_traces(stub, by_source(source))] == ["before", "after"]


def write_large_file(path: Path, copies: int) -> None:
    """`copies` times the shipped file, each copy's prompts marked so every line is a new trace;
    written line by line."""
    with path.open("wb") as out:
        for copy in range(copies):
            with SHIPPED_TRACES.open("rb") as lines:
                for line in lines:
                    out.write(line.replace(b'"prompt": "', f'"prompt": "[{copy}] '.encode(), 1))


@pytest.mark.slow  # ~15 s on SQLite, ~45 s on PostgreSQL
def test_an_import_of_30000_lines_succeeds(
    registry_server: RunningRegistry, stub: Stub, tmp_path: Path
) -> None:
    path = tmp_path / "large.jsonl"
    write_large_file(path, LARGE // SHIPPED)
    source = unique("large")
    assert import_summary(registry_server, path, source) == (
        f"imported {LARGE} of {LARGE} traces; {LARGE} new, 0 already present"
    )
    stored = list_all_traces(stub, by_source(source))
    assert len(stored) == LARGE
    assert len({t.content_hash for t in stored}) == LARGE
    assert stored[0].prompt == "[0] What is 17 + 35?"
    assert stored[-1].prompt.startswith(f"[{LARGE // SHIPPED - 1}] ")
