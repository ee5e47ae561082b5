"""Byte streams for client-streaming uploads: files and line iterators cut into bounded chunks.

gRPC sends each chunk as one message. Chunks are bounded (256 KiB for trace imports, 1 MiB for
artifacts) so memory stays flat whatever the file size, and each stays far below the 4 MiB chunk
and 64 MiB message limits of the servers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

# Called with the number of bytes just handed to gRPC (an increment, as tqdm.update expects).
Progress = Callable[[int], None]


def file_chunks(path: Path, chunk_size: int, progress: Progress | None = None) -> Iterator[bytes]:
    """The file's bytes in chunks of at most `chunk_size`, read lazily."""
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            if progress is not None:
                progress(len(chunk))
            yield chunk


def line_chunks(
    lines: Iterable[str | bytes], chunk_size: int, progress: Progress | None = None
) -> Iterator[bytes]:
    """JSONL lines joined into chunks of about `chunk_size` bytes.

    Each item is one line; a missing trailing newline is added. Lines are packed together because
    one message per short line would spend more on framing than on data.
    """
    buffer = bytearray()
    for line in lines:
        data = line.encode() if isinstance(line, str) else line
        buffer += data
        if not data.endswith(b"\n"):
            buffer += b"\n"
        if len(buffer) >= chunk_size:
            if progress is not None:
                progress(len(buffer))
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        if progress is not None:
            progress(len(buffer))
        yield bytes(buffer)


def split_bytes(data: bytes, chunk_size: int, progress: Progress | None = None) -> Iterator[bytes]:
    """`data` in slices of at most `chunk_size` bytes."""
    for start in range(0, len(data), chunk_size):
        chunk = data[start : start + chunk_size]
        if progress is not None:
            progress(len(chunk))
        yield chunk


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """The lowercase hex sha256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in file_chunks(path, chunk_size):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
