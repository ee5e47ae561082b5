"""Canonical JSON and content hashes: the same content always hashes the same.

Numbers that arrive through `google.protobuf.Struct` are doubles, so `13` becomes `13.0`; integral
floats are turned back into ints first, so a trace hashes alike from JSONL or from a proto.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def normalize(value: Any) -> Any:
    """Returns `value` with integral floats as ints, recursively."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()
