"""The rows the generator writes: traces in the registry's format, eval-set items, and their
fixed JSONL serialization.

``validate_trace`` repeats the registry's limits on one trace, so that a generated row the
registry would refuse fails while generating, not halfway through an import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TypedDict

TRACE_VERSION = "1.0"

# The registry's limits on one trace.
MAX_TRACE_VERSION_CHARS = 64
MAX_TEXT_CHARS = 50_000
MAX_STEPS = 1_000
MAX_STEP_TYPE_CHARS = 64
MAX_STEP_CONTENT_CHARS = 20_000
MAX_TRACE_BYTES = 1024 * 1024


class Step(TypedDict):
    i: int
    type: str
    content: str


class Meta(TypedDict):
    dataset: str
    generator: str
    generator_version: str
    seed: int
    category: str
    task_type: str
    difficulty: str
    index: int


class Trace(TypedDict):
    trace_version: str
    prompt: str
    final_answer: str
    steps: list[Step]
    meta: Meta


class EvalItemMeta(TypedDict):
    dataset: str  # the trace dataset the item was made from
    task_type: str
    index: int  # the trace's row in that dataset, which is also the item's row in the eval set


class EvalItem(TypedDict):
    id: str
    prompt: str
    expected_answer: str
    category: str
    difficulty: str
    meta: EvalItemMeta


def validate_trace(trace: Mapping[str, object]) -> list[str]:
    """Everything about ``trace`` the registry would reject; an empty list means it is valid."""
    errors: list[str] = []
    version = trace.get("trace_version")
    if not isinstance(version, str) or not 1 <= len(version) <= MAX_TRACE_VERSION_CHARS:
        errors.append(f"trace_version must be a string of 1-{MAX_TRACE_VERSION_CHARS} chars")
    for key in ("prompt", "final_answer"):
        text = trace.get(key)
        # The registry only caps the length; empty text is refused too since it cannot train.
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT_CHARS:
            errors.append(f"{key} must be a string of 1-{MAX_TEXT_CHARS} chars")
    steps = trace.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        errors.append(f"steps must be a list of 1-{MAX_STEPS} steps")
        steps = []
    indices: set[int] = set()
    for pos, step in enumerate(steps):
        errors.extend(f"steps[{pos}]: {e}" for e in _step_errors(step, indices))
    if not isinstance(trace.get("meta"), dict):
        errors.append("meta must be an object")
    if not errors and len(serialize(trace).encode("utf-8")) > MAX_TRACE_BYTES:
        errors.append(f"trace is larger than {MAX_TRACE_BYTES} bytes")
    return errors


def _step_errors(step: object, indices: set[int]) -> list[str]:
    if not isinstance(step, dict):
        return ["must be an object"]
    errors = []
    i = step.get("i")
    if not isinstance(i, int) or isinstance(i, bool) or i < 0:
        errors.append("i must be an integer >= 0")
    elif i in indices:
        errors.append(f"i {i} is repeated")
    else:
        indices.add(i)
    kind = step.get("type")
    if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_STEP_TYPE_CHARS:
        errors.append(f"type must be a string of 1-{MAX_STEP_TYPE_CHARS} chars")
    content = step.get("content")
    if not isinstance(content, str) or len(content) > MAX_STEP_CONTENT_CHARS:
        errors.append(f"content must be a string of at most {MAX_STEP_CONTENT_CHARS} chars")
    return errors


def serialize(row: Mapping[str, object]) -> str:
    """One JSONL line, spaced like the original tunix-rt's data files; keys in the dicts' order.

    These bytes are the canonical form a manifest's sha256 is taken over."""
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


def to_jsonl(rows: Iterable[Mapping[str, object]]) -> bytes:
    return "".join(serialize(r) + "\n" for r in rows).encode("utf-8")
