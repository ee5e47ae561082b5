"""A minimal writer of TensorBoard event files holding scalars, with no TensorFlow or tensorboard.

An event file is a sequence of TFRecords, each holding one serialized `tensorboard.Event`:

    record = uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

(all little-endian; the mask is TensorFlow's `((crc >> 15) | (crc << 17)) + 0xa282ead8`). The
first event names the file version (`brain.Event:2`); each further event holds a `Summary` of
`simple_value` scalars at one step and wall time. Only the few protobuf fields this needs are
encoded, by hand, from their field numbers in tensorboard's `event.proto` and `summary.proto`:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; }

    with EventFileWriter(Path("logs/run-1")) as writer:
        writer.add_scalars(step=10, wall_time=1.7e9, values={"loss": 2.5})
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

FILE_VERSION = "brain.Event:2"
# Appended to our file names, so a rewrite can replace its own earlier files and nothing else.
FILE_SUFFIX = ".tunix-rt"


def _crc32c_table() -> list[int]:
    # CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, as TFRecord uses.
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tf_record(data: bytes) -> bytes:
    """`data` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64s are ten-byte two's complement varints
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, *, file_version: str = "", summary: bytes = b"") -> bytes:
    data = _varint(1 << 3 | 1) + struct.pack("<d", wall_time)
    if step:
        data += _varint(2 << 3 | 0) + _varint(step)
    if file_version:
        data += _length_delimited(3, file_version.encode())
    if summary:
        data += _length_delimited(5, summary)
    return data


def scalar_summary(values: Mapping[str, float]) -> bytes:
    """A serialized `Summary` with one `simple_value` per tag (float32, as TensorBoard stores)."""
    out = b""
    for tag, value in values.items():
        item = _length_delimited(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value)
        out += _length_delimited(1, item)
    return out


class EventFileWriter:
    """Writes one new event file in `directory` (created when missing), named as TensorBoard
    expects: `events.out.tfevents.{seconds}.{host}.{pid}.tunix-rt`."""

    def __init__(self, directory: Path, *, wall_time: float | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        start = time.time() if wall_time is None else wall_time
        host = socket.gethostname() or "localhost"
        self.path = directory / (
            f"events.out.tfevents.{int(start):010d}.{host}.{os.getpid()}{FILE_SUFFIX}"
        )
        self._file: BinaryIO = self.path.open("wb")
        self._file.write(tf_record(_event(start, 0, file_version=FILE_VERSION)))

    def add_scalars(self, step: int, wall_time: float, values: Mapping[str, float]) -> None:
        """One event holding every value at `step`; tags are the keys."""
        if values:
            self._file.write(tf_record(_event(wall_time, step, summary=scalar_summary(values))))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
