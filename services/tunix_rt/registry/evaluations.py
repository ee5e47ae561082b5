"""Evaluations and leaderboards, as plain Python."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunix_rt.common.errors import FieldViolation, InvalidArgument
from tunix_rt.registry import names

MAX_ITEMS = 100_000
MAX_METRIC_NAME = 128
# evaluation_items.item_id is VARCHAR(256).
MAX_ITEM_ID = 256


# Evaluations on an eval set keep `evalSets/{id}` in the place of a dataset id: dataset ids never
# contain `/`, so the two cannot be confused.
EVAL_SET_PREFIX = "evalSets/"


def eval_set_source(eval_set_id: str) -> str:
    return EVAL_SET_PREFIX + eval_set_id


def parse_eval_set_source(source: str) -> str:
    """The eval set id of an `evalSets/{id}` source; empty for a dataset id."""
    return source[len(EVAL_SET_PREFIX) :] if source.startswith(EVAL_SET_PREFIX) else ""


def parse_source(name: str, field: str) -> str:
    """What a request says an evaluation is on, as a source: `datasets/{id}` (or a bare id) gives
    the dataset id, `evalSets/{id}` stays as it is."""
    if name.startswith(EVAL_SET_PREFIX):
        return eval_set_source(names.parse_eval_set(name, field))
    return names.parse(name, "datasets", field)


@dataclass(frozen=True)
class Evaluation:
    """A stored evaluation."""

    uid: str
    model_id: str
    version: int
    dataset_id: str  # a dataset id, or `evalSets/{id}` for an evaluation on an eval set
    split: int
    metrics: dict[str, float]
    config: dict[str, Any]
    item_count: int
    create_time: datetime


@dataclass(frozen=True)
class LeaderboardRow:
    """One evaluated value, before ranking."""

    model_id: str
    version: int
    evaluation_uid: str
    value: float
    create_time: datetime


def check_metrics(metrics: Mapping[str, float], field: str = "evaluation.metrics") -> None:
    violations = []
    if not metrics:
        violations.append(FieldViolation(field, "must hold at least one metric"))
    for key, value in metrics.items():
        if not key or len(key) > MAX_METRIC_NAME:
            violations.append(FieldViolation(f"{field}[{key!r}]", "needs a 1-128 char name"))
        if math.isnan(value) or math.isinf(value):
            violations.append(FieldViolation(f"{field}[{key!r}]", "must be a finite number"))
    if violations:
        raise InvalidArgument.fields(violations)


def check_items(items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    if len(items) > MAX_ITEMS:
        raise InvalidArgument.field("items", f"at most {MAX_ITEMS} items")
    for n, (item_id, _data) in enumerate(items):
        if not item_id or len(item_id) > MAX_ITEM_ID:
            raise InvalidArgument.field(f"items[{n}].item_id", "needs 1-256 chars")


def rank(rows: Iterable[LeaderboardRow], *, lower_is_better: bool) -> list[LeaderboardRow]:
    """Best row per model version, best first; ties go to the earlier evaluation."""
    best: dict[tuple[str, int], LeaderboardRow] = {}
    for row in rows:
        key = (row.model_id, row.version)
        held = best.get(key)
        better = (
            held is None
            or (row.value < held.value if lower_is_better else row.value > held.value)
            or (row.value == held.value and row.create_time < held.create_time)
        )
        if better:
            best[key] = row
    sign = 1.0 if lower_is_better else -1.0
    return sorted(best.values(), key=lambda r: (sign * r.value, r.create_time, r.model_id))
