"""Scoring predictions and aggregating metrics: answer accuracy overall and broken down by
category and difficulty, plus the optional metrics an Evaluate request may ask for."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.models.answers import answers_match, extract_answer, normalize_answer

ANSWER_ACCURACY = "answer_accuracy"
# Per-item metrics: each item gets a score, the aggregate is the mean, with breakdowns.
PER_ITEM = ("answer_accuracy", "exact_match", "mean_completion_tokens", "mean_latency_seconds")
# Metrics over the whole run only.
OVERALL = ("tokens_per_second",)
KNOWN = PER_ITEM + OVERALL
BREAKDOWN_KEYS = ("category", "difficulty")


def check_metrics(names: Sequence[str], field_name: str = "metrics") -> list[str]:
    """The metrics to compute, answer accuracy first; INVALID_ARGUMENT for an unknown name."""
    for n, name in enumerate(names):
        if name not in KNOWN:
            raise InvalidArgument.field(
                f"{field_name}[{n}]", f"unknown metric {name!r}; known: {', '.join(KNOWN)}"
            )
    return [ANSWER_ACCURACY] + [m for m in dict.fromkeys(names) if m != ANSWER_ACCURACY]


def with_gated(metrics: Sequence[str], gated: Iterable[str]) -> list[str]:
    """`metrics` plus each gated metric computed here (a breakdown such as
    `answer_accuracy/category=x` counts as its metric), so that a baseline evaluation holds
    every value its gate compares."""
    bases = (name.split("/", 1)[0] for name in gated)
    return list(dict.fromkeys([*metrics, *(name for name in bases if name in KNOWN)]))


@dataclass(frozen=True)
class Scored:
    """One item's prediction as scored."""

    extracted: str | None
    correct: bool
    scores: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    completion_tokens: int = 0
    latency_s: float = 0.0


def score(
    text: str,
    expected: str,
    metrics: Sequence[str],
    *,
    meta: dict[str, Any],
    completion_tokens: int,
    latency_s: float,
    failed: bool = False,
) -> Scored:
    """Scores one output; a failed item (no prediction) counts as incorrect."""
    extracted = None if failed else extract_answer(text)
    correct = answers_match(extracted, expected)
    values = {
        "answer_accuracy": 1.0 if correct else 0.0,
        # Exact match: the normalised text (case, spacing, trailing punctuation) must be equal,
        # with no number/unit leniency.
        "exact_match": 1.0
        if extracted is not None
        and normalize_answer(extracted) == normalize_answer(expected)
        and _bare(extracted) == _bare(expected)
        else 0.0,
        "mean_completion_tokens": float(completion_tokens),
        "mean_latency_seconds": float(latency_s),
    }
    scores = {m: values[m] for m in metrics if m in values}
    return Scored(extracted, correct, scores, meta, completion_tokens, latency_s)


def _bare(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def aggregate(
    scored: Iterable[Scored], metrics: Sequence[str], elapsed_s: float
) -> dict[str, float]:
    """Mean of each per-item metric overall and per `{metric}/{key}={value}` breakdown, plus the
    run-wide metrics. Empty input gives no per-item metrics (nothing to average)."""
    items = list(scored)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        for metric, value in item.scores.items():
            keys = [metric] + [
                f"{metric}/{k}={item.meta[k]}" for k in BREAKDOWN_KEYS if item.meta.get(k)
            ]
            for key in keys:
                sums[key] += value
                counts[key] += 1
    result = {key: sums[key] / counts[key] for key in sorted(sums)}
    if "tokens_per_second" in metrics and items:
        tokens = sum(i.completion_tokens for i in items)
        result["tokens_per_second"] = tokens / elapsed_s if elapsed_s > 0 else 0.0
    return result


def final(scored: Iterable[Scored], metrics: Sequence[str], elapsed_s: float) -> dict[str, float]:
    """The metrics an evaluation records: `aggregate`, except that an empty source still records
    its (vacuous) answer accuracy, 0."""
    return aggregate(scored, metrics, elapsed_s) or {ANSWER_ACCURACY: 0.0}
