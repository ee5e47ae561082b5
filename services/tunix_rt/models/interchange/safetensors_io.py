"""safetensors files read with numpy alone: headers (cheap, for validation) and float32 tensors
of any float dtype (bfloat16 included, which numpy has no type for)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

# Bigger headers than this are not a model checkpoint we made or can sensibly read.
MAX_HEADER_BYTES = 100 << 20
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
_NUMPY = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
# Bytes per element of each safetensors dtype (sub-byte types are not model weights we read).
ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class HeaderError(ValueError):
    """Not a readable safetensors header."""


def read_header(handle: IO[bytes]) -> dict[str, dict[str, Any]]:
    """{tensor name: {"dtype", "shape", "data_offsets"}} of the file open at its start."""
    prefix = handle.read(8)
    if len(prefix) != 8:
        raise HeaderError("shorter than a safetensors header")
    (size,) = struct.unpack("<Q", prefix)
    if size > MAX_HEADER_BYTES:
        raise HeaderError(f"header of {size} bytes is too large")
    raw = handle.read(size)
    if len(raw) != size:
        raise HeaderError("truncated header")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HeaderError(f"header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise HeaderError("header is not a JSON object")
    header.pop("__metadata__", None)
    for name, entry in header.items():
        _check_entry(name, entry)
    return header


def _is_count(value: object) -> bool:
    # bool is an int subclass, and True is no dimension.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(name: str, entry: object) -> None:
    """An entry's dtype, shape and data_offsets are well formed and agree with each other, so
    readers can trust them (a wrong size would read another tensor's bytes or past the end)."""
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("dtype"), str)
        or not isinstance(entry.get("shape"), list)
    ):
        raise HeaderError(f"entry {name!r} lacks dtype or shape")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry.get("data_offsets")
    if dtype not in ITEMSIZE:
        raise HeaderError(f"entry {name!r} has unknown dtype {dtype!r}")
    if not all(_is_count(d) for d in shape):
        raise HeaderError(f"entry {name!r} has shape {shape!r}: dimensions are integers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise HeaderError(f"entry {name!r} has data_offsets {offsets!r}: expected [start, end]")
    start, end = offsets
    size = math.prod(shape) * ITEMSIZE[dtype]
    if end < start or end - start != size:
        raise HeaderError(
            f"entry {name!r} has data_offsets {offsets!r}, but {dtype} {shape} takes {size} bytes"
        )


def data_end(header: dict[str, dict[str, Any]]) -> int:
    """Where the tensor data of a checked header ends, counted from the end of the header."""
    return max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)


def load(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one file as float32 (non-float dtypes raise HeaderError)."""
    with open(path, "rb") as handle:
        header = read_header(handle)
        base = handle.tell()
        out: dict[str, np.ndarray] = {}
        for name, entry in header.items():
            dtype, shape = entry["dtype"], tuple(int(d) for d in entry["shape"])
            start, end = (int(x) for x in entry["data_offsets"])
            handle.seek(base + start)
            data = handle.read(end - start)
            if len(data) != end - start:
                raise HeaderError(f"{name}: the file ends inside its data (truncated)")
            if dtype == "BF16":
                # bfloat16 is the top half of a float32.
                bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
                array = bits.view(np.float32)
            elif dtype in _NUMPY:
                array = np.frombuffer(data, dtype=np.dtype(_NUMPY[dtype]).newbyteorder("<"))
            else:
                raise HeaderError(f"{name}: dtype {dtype} is not a float type")
            out[name] = array.astype(np.float32).reshape(shape)
    return out


def load_many(paths: Iterable[Path]) -> dict[str, np.ndarray]:
    """The tensors of several files (the shards of one checkpoint) in one mapping."""
    tensors: dict[str, np.ndarray] = {}
    for path in paths:
        tensors.update(load(path))
    return tensors


def save(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """Writes float32 tensors in sorted name order (deterministic bytes), `format: pt` metadata
    so `transformers` accepts the file."""
    from safetensors.numpy import save_file

    ordered = {
        name: np.ascontiguousarray(tensors[name], dtype=np.float32) for name in sorted(tensors)
    }
    save_file(ordered, str(path), metadata={"format": "pt"})
    return path
