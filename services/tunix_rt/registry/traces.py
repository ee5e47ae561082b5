"""Reasoning traces: the schema, its limits and validation, as plain Python.

The limits are those the original tunix-rt enforced (datasets/README.md lists them): `trace_version`
1-64 chars, `prompt` and `final_answer` at most 50,000 chars, 1-1,000 steps with unique `i` >= 0,
step `type` at most 64 chars, step `content` at most 20,000 chars, the whole trace at most 1 MiB.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from tunix_rt.common import canonical
from tunix_rt.common.errors import FieldViolation, InvalidArgument

MAX_VERSION_CHARS = 64
MAX_TEXT_CHARS = 50_000
MAX_STEPS = 1_000
MAX_STEP_TYPE_CHARS = 64
MAX_STEP_CONTENT_CHARS = 20_000
MAX_TRACE_BYTES = 1 << 20
MAX_SOURCE_CHARS = 256
# Step `i` is an int32 in trace.proto.
MAX_STEP_INDEX = 2**31 - 1
# Meta entries longer than this are stored but not indexed for filtering.
MAX_INDEXED_META_VALUE = 512
MAX_INDEXED_META_KEY = 128
# Traces stored in one transaction (a batch create, or an atomic import).
MAX_BATCH_TRACES = 10_000
# Bytes of one JSONL line. A line's trace is at most 1 MiB of canonical JSON, which escapes
# (`\uXXXX` for every character) and spacing can make several times longer in a file; 8 MiB
# admits any of those, and bounds what an import holds while it waits for a line's end.
MAX_LINE_BYTES = 8 << 20
# Objects and lists nested in `meta`, itself included. A trace is read back as a
# google.protobuf.Struct, three message levels per JSON object, inside up to four wrappers
# (ExportDatasetResponse > DatasetRecord > Trace), and protobuf refuses to parse messages nested
# past 100 levels: a meta nested ~32 deep could be imported from JSONL but never read again.
MAX_META_DEPTH = 20

_FIELDS = {"trace_version", "prompt", "steps", "final_answer", "meta"}


@dataclass(frozen=True)
class Step:
    """One reasoning step."""

    i: int
    type: str
    content: str


@dataclass(frozen=True)
class TraceContent:
    """A validated trace as submitted, before it is stored."""

    trace_version: str
    prompt: str
    steps: tuple[Step, ...]
    final_answer: str
    meta: dict[str, Any]
    source: str = ""

    def canonical_dict(self) -> dict[str, Any]:
        """The hashed content: everything but `source` (where it came from is not what it is)."""
        return {
            "trace_version": self.trace_version,
            "prompt": self.prompt,
            "steps": [{"i": s.i, "type": s.type, "content": s.content} for s in self.steps],
            "final_answer": self.final_answer,
            "meta": self.meta,
        }

    def content_hash(self) -> str:
        return self._content_hash

    @cached_property
    def _content_hash(self) -> str:
        # Cached: an import needs it for its fingerprint, its lookup and its insert.
        return canonical.sha256_hex(canonical.dumps(self.canonical_dict()))

    def meta_index(self) -> dict[str, str]:
        """Top-level scalar meta entries as filterable text (see MetaCondition in trace.proto)."""
        return {
            key: text
            for key, value in self.meta.items()
            if len(key) <= MAX_INDEXED_META_KEY
            and (text := meta_value_text(value)) is not None
            and len(text) <= MAX_INDEXED_META_VALUE
        }


@dataclass(frozen=True)
class Trace:
    """A stored trace."""

    uid: str
    content: TraceContent
    content_hash: str
    create_time: datetime
    extra: dict[str, Any] = field(default_factory=dict)


def meta_value_text(value: Any) -> str | None:
    """How a scalar meta value is matched: strings as written, other scalars as JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return json.dumps(canonical.normalize(value))
    return None


def _check_text(
    violations: list[FieldViolation], path: str, value: Any, max_chars: int, *, required: bool
) -> str:
    if not isinstance(value, str):
        violations.append(FieldViolation(path, "must be a string"))
        return ""
    if required and not value:
        violations.append(FieldViolation(path, "is required"))
    if len(value) > max_chars:
        violations.append(FieldViolation(path, f"is {len(value)} chars; the limit is {max_chars}"))
    if (problem := text_problem(value)) is not None:
        violations.append(FieldViolation(path, problem))
    return str(value)


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text on every database, or None: NUL characters (which
    PostgreSQL text refuses) and lone surrogates (not UTF-8; JSON escapes such as `\\ud800`)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate)"
    return None


def _check_meta(violations: list[FieldViolation], path: str, value: Any, depth: int = 1) -> None:
    """Meta must be JSON that every database stores and every reader parses: finite numbers,
    storable strings, at most MAX_META_DEPTH levels (checked before going deeper, so a JSONL
    line nested to the recursion limit costs no recursion here)."""
    if isinstance(value, dict | list) and depth > MAX_META_DEPTH:
        violations.append(FieldViolation(path, f"nests deeper than {MAX_META_DEPTH} levels"))
    elif isinstance(value, dict):
        for key, item in value.items():
            if (problem := text_problem(str(key))) is not None:
                violations.append(FieldViolation(f"{path}.{key!a}", f"key {problem}"))
            else:
                _check_meta(violations, f"{path}.{key}", item, depth + 1)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_meta(violations, f"{path}[{n}]", item, depth + 1)
    elif isinstance(value, str):
        if (problem := text_problem(value)) is not None:
            violations.append(FieldViolation(path, problem))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond the range of a double
            finite = False
        if not finite:
            violations.append(FieldViolation(path, "must be a finite number"))


def validate(raw: Any, *, prefix: str = "", source: str = "") -> TraceContent:
    """Validates a trace given as JSON-like data and returns it; raises InvalidArgument naming
    every bad field (paths such as `steps[2].content`, under `prefix`)."""
    violations: list[FieldViolation] = []
    if not isinstance(raw, dict):
        raise InvalidArgument.field(prefix.rstrip(".") or "trace", "must be a JSON object")
    for unknown in sorted(set(raw) - _FIELDS):
        violations.append(FieldViolation(f"{prefix}{unknown}", "is not a trace field"))
    version = _check_text(
        violations,
        f"{prefix}trace_version",
        raw.get("trace_version", ""),
        MAX_VERSION_CHARS,
        required=True,
    )
    prompt = _check_text(
        violations, f"{prefix}prompt", raw.get("prompt", ""), MAX_TEXT_CHARS, required=True
    )
    answer = _check_text(
        violations,
        f"{prefix}final_answer",
        raw.get("final_answer", ""),
        MAX_TEXT_CHARS,
        required=True,
    )
    steps = _validate_steps(violations, raw.get("steps"), f"{prefix}steps")
    meta = raw.get("meta") or {}
    if not isinstance(meta, dict):
        violations.append(FieldViolation(f"{prefix}meta", "must be a JSON object"))
        meta = {}
    _check_meta(violations, f"{prefix}meta", meta)
    if len(source) > MAX_SOURCE_CHARS:
        violations.append(FieldViolation(f"{prefix}source", f"exceeds {MAX_SOURCE_CHARS} chars"))
    elif (problem := text_problem(source)) is not None:
        violations.append(FieldViolation(f"{prefix}source", problem))
    if violations:
        raise InvalidArgument.fields(violations)
    content = TraceContent(version, prompt, steps, answer, canonical.normalize(meta), source)
    size = len(canonical.dumps(content.canonical_dict()).encode())
    if size > MAX_TRACE_BYTES:
        raise InvalidArgument.field(
            prefix.rstrip(".") or "trace", f"is {size} bytes of JSON; the limit is 1 MiB"
        )
    return content


def _validate_steps(violations: list[FieldViolation], raw: Any, path: str) -> tuple[Step, ...]:
    if not isinstance(raw, list) or not raw:
        violations.append(FieldViolation(path, "must be a non-empty list of steps"))
        return ()
    if len(raw) > MAX_STEPS:
        violations.append(FieldViolation(path, f"has {len(raw)} steps; the limit is {MAX_STEPS}"))
        return ()
    steps: list[Step] = []
    seen: set[int] = set()
    for n, item in enumerate(raw):
        here = f"{path}[{n}]"
        if not isinstance(item, dict):
            violations.append(FieldViolation(here, "must be an object {i, type, content}"))
            continue
        for unknown in sorted(set(item) - {"i", "type", "content"}):
            violations.append(FieldViolation(f"{here}.{unknown}", "is not a step field"))
        index = item.get("i")
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index <= MAX_STEP_INDEX
        ):
            violations.append(
                FieldViolation(f"{here}.i", f"must be an integer in [0, {MAX_STEP_INDEX}]")
            )
            index = -1
        elif index in seen:
            violations.append(FieldViolation(f"{here}.i", f"duplicates step i={index}"))
        seen.add(index)
        kind = _check_text(
            violations, f"{here}.type", item.get("type", ""), MAX_STEP_TYPE_CHARS, required=True
        )
        text = _check_text(
            violations,
            f"{here}.content",
            item.get("content", ""),
            MAX_STEP_CONTENT_CHARS,
            required=True,
        )
        steps.append(Step(index, kind, text))
    return tuple(steps)


class JsonlLines:
    """Numbers the lines of a byte stream as its chunks arrive (1-based; lines may be split across
    chunks anywhere), holding only the unfinished line: `feed` each chunk, then `end`.

    A line longer than MAX_LINE_BYTES comes out as None, its bytes dropped as they arrive.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        self._overlong = False
        self._count = 0

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes | None]]:
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            yield self._line(data[start:end])
            start = end + 1
        self._hold(data[start:])

    def end(self) -> Iterator[tuple[int, bytes | None]]:
        """The last line, which needs no newline (empty, so skipped as blank, after a final one)."""
        yield self._line(b"")

    def _line(self, tail: bytes) -> tuple[int, bytes | None]:
        self._hold(tail)
        line = None if self._overlong else bytes(self._partial)
        self._partial.clear()
        self._overlong = False
        self._count += 1
        return self._count, line

    def _hold(self, data: bytes) -> None:
        if not self._overlong and len(self._partial) + len(data) > MAX_LINE_BYTES:
            self._overlong = True
            self._partial.clear()
        if not self._overlong:
            self._partial += data


def overlong_line() -> InvalidArgument:
    """The error of a line past MAX_LINE_BYTES (field `line`)."""
    return InvalidArgument.field(
        "line", f"is longer than {MAX_LINE_BYTES >> 20} MiB; a trace is at most 1 MiB of JSON"
    )


def parse_jsonl_line(line: bytes) -> Any:
    """Decodes one JSONL line; raises InvalidArgument (field `line`) when it is not JSON, or JSON
    that Python refuses to hold: nested past the recursion limit (RecursionError), or an integer
    of more than 4,300 digits (ValueError, CPython's guard against quadratic int parsing)."""
    try:
        return json.loads(line)
    except RecursionError:
        raise InvalidArgument.field("line", "is nested too deeply to parse") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidArgument.field("line", f"is not valid JSON: {exc}") from None
