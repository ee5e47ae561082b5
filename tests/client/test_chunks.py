"""Chunking of client streams: bounded chunks, whole lines, exact progress."""

from __future__ import annotations

from pathlib import Path

from tunix_rt.client.chunks import file_chunks, file_sha256, line_chunks, split_bytes


def test_lines_are_packed_into_bounded_chunks_with_newlines() -> None:
    sent: list[int] = []
    lines: list[str | bytes] = ['{"a": 1}', b'{"b": 2}\n', "x" * 40]
    chunks = list(line_chunks(lines, chunk_size=16, progress=sent.append))
    assert b"".join(chunks) == b'{"a": 1}\n{"b": 2}\n' + b"x" * 40 + b"\n"
    # A chunk closes once it reaches the size, and only between lines.
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert sent == [len(c) for c in chunks]


def test_files_and_bytes_are_cut_to_size(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 10
    path.write_bytes(data)
    sent: list[int] = []
    chunks = list(file_chunks(path, 1000, sent.append))
    assert [len(c) for c in chunks] == [1000, 1000, 560] and b"".join(chunks) == data
    assert sum(sent) == len(data)
    assert b"".join(split_bytes(data, 999)) == data
    digest, size = file_sha256(path)
    assert size == len(data) and len(digest) == 64
