"""Eval sets: ordered prompts with expected answers and no steps, as plain Python."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunix_rt.common import canonical
from tunix_rt.common.errors import FieldViolation, InvalidArgument

MAX_ITEMS = 100_000
MAX_ITEM_ID = 256
MAX_PROMPT = 100_000
MAX_ANSWER = 10_000
MAX_DESCRIPTION = 4096
# Meta keys whose string values are counted (and used for evaluation breakdowns).
COUNTED_KEYS = ("category", "difficulty", "section")


@dataclass(frozen=True)
class EvalSetItem:
    """One item: what to ask and the answer to expect."""

    item_id: str
    prompt: str
    expected_answer: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class EvalSet:
    """A stored eval set (without its items)."""

    eval_set_id: str
    description: str
    item_count: int
    counts: dict[str, int]
    content_hash: str
    create_time: datetime


def _text_violations(value: str, field: str, limit: int) -> list[FieldViolation]:
    if not value.strip():
        return [FieldViolation(field, "is required")]
    if len(value) > limit:
        return [FieldViolation(field, f"is {len(value)} chars; the limit is {limit}")]
    if "\x00" in value:
        return [FieldViolation(field, "must not contain NUL characters")]
    return []


def validate(description: str, items: Sequence[EvalSetItem]) -> None:
    """Raises InvalidArgument naming every bad field (`items[n].prompt` ...)."""
    violations: list[FieldViolation] = []
    if len(description) > MAX_DESCRIPTION or "\x00" in description:
        violations.append(
            FieldViolation("eval_set.description", f"needs at most {MAX_DESCRIPTION} chars, no NUL")
        )
    if not items:
        violations.append(FieldViolation("items", "must hold at least one item"))
    if len(items) > MAX_ITEMS:
        violations.append(FieldViolation("items", f"at most {MAX_ITEMS} items"))
    seen: set[str] = set()
    for n, item in enumerate(items):
        violations += _text_violations(item.item_id, f"items[{n}].item_id", MAX_ITEM_ID)
        violations += _text_violations(item.prompt, f"items[{n}].prompt", MAX_PROMPT)
        violations += _text_violations(
            item.expected_answer, f"items[{n}].expected_answer", MAX_ANSWER
        )
        if item.item_id in seen:
            violations.append(FieldViolation(f"items[{n}].item_id", f"{item.item_id!r} repeats"))
        seen.add(item.item_id)
    if violations:
        raise InvalidArgument.fields(violations[:100])


def counts(items: Sequence[EvalSetItem]) -> dict[str, int]:
    """Item counts keyed `category=...`, `difficulty=...`, `section=...`."""
    counter: Counter[str] = Counter()
    for item in items:
        for key in COUNTED_KEYS:
            value = item.meta.get(key)
            if isinstance(value, str) and value:
                counter[f"{key}={value}"] += 1
    return dict(sorted(counter.items()))


def content_hash(items: Sequence[EvalSetItem]) -> str:
    return canonical.sha256_hex(
        canonical.dumps([[i.item_id, i.prompt, i.expected_answer, i.meta] for i in items])
    )
