"""Datasets: seeded train/eval splits, statistics, content hashes and the rendering of members as
supervised fine-tuning examples, as plain Python.

A dataset is a frozen, ordered list of traces. The split is decided per trace by ranking
`sha256(seed:position:trace hash)`: it depends only on the seed and the members, is the same on
every machine and Python version (unlike `random.shuffle`), and needs no stored random state.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunix_rt.common import canonical
from tunix_rt.common.errors import FieldViolation, InvalidArgument
from tunix_rt.common.rendering import CHAT_TEMPLATES, DEFAULT_TEMPLATE, render_prompt, render_target
from tunix_rt.registry.limits import check_chars
from tunix_rt.registry.traces import Trace

# DatasetSplit numbers (dataset.proto). Every member is in TRAIN or EVAL; UNSPECIFIED and ALL name
# no one split (what they mean is up to the request: an export reads both, train first).
UNSPECIFIED = 0
TRAIN = 1
EVAL = 2
ALL = 3
DEFAULT_EVAL_FRACTION = 0.1
MAX_MEMBERS = 1_000_000


@dataclass(frozen=True)
class SplitConfig:
    """How members are divided: a fraction in [0, 1) goes to eval, chosen by `seed`."""

    eval_fraction: float = DEFAULT_EVAL_FRACTION
    seed: int = 0


@dataclass(frozen=True)
class TraceFilter:
    """A conjunction of trace conditions (see TraceFilter in trace.proto)."""

    source: str = ""
    meta: tuple[tuple[str, str], ...] = ()
    create_time_after: datetime | None = None
    create_time_before: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "meta": [list(pair) for pair in self.meta],
            "create_time_after": self.create_time_after.isoformat()
            if self.create_time_after
            else None,
            "create_time_before": self.create_time_before.isoformat()
            if self.create_time_before
            else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TraceFilter:
        after, before = data.get("create_time_after"), data.get("create_time_before")
        return cls(
            source=data.get("source", ""),
            meta=tuple((k, v) for k, v in data.get("meta", [])),
            create_time_after=datetime.fromisoformat(after) if after else None,
            create_time_before=datetime.fromisoformat(before) if before else None,
        )


@dataclass(frozen=True)
class Dataset:
    """A stored dataset."""

    dataset_id: str
    description: str
    filter: TraceFilter | None
    split: SplitConfig
    stats: dict[str, Any]
    content_hash: str
    create_time: datetime


@dataclass(frozen=True)
class SftExample:
    """A member rendered for supervised fine-tuning (SftExample in dataset.proto)."""

    trace_uid: str
    prompt: str  # the trace's prompt with the chat template applied
    target: str  # the steps, one per line, then `Answer: X`
    answer: str  # the trace's final answer: the X of that last `Answer: X`


def check_split(split: SplitConfig) -> None:
    if not (0.0 <= split.eval_fraction < 1.0) or math.isnan(split.eval_fraction):
        raise InvalidArgument.field("split.eval_fraction", "must be in [0, 1)")


def assign_splits(traces: Sequence[Trace], split: SplitConfig) -> list[int]:
    """Returns TRAIN or EVAL for each member, in member order.

    `round(n * eval_fraction)` members go to eval, but at least one when the fraction is positive
    and there are two or more members, so a small dataset still has something to evaluate on.
    """
    n = len(traces)
    n_eval = round(n * split.eval_fraction)
    if split.eval_fraction > 0 and n >= 2:
        n_eval = max(1, n_eval)
    n_eval = min(n_eval, n - 1) if n else 0
    ranked = sorted(
        range(n),
        key=lambda pos: canonical.sha256_hex(f"{split.seed}:{pos}:{traces[pos].content_hash}"),
    )
    eval_positions = set(ranked[:n_eval])
    return [EVAL if pos in eval_positions else TRAIN for pos in range(n)]


def content_hash(traces: Sequence[Trace], splits: Sequence[int], split: SplitConfig) -> str:
    """sha256 over the split config and each member's (split, content hash), in order."""
    parts = [f"eval_fraction={split.eval_fraction!r};seed={split.seed}"]
    parts.extend(f"{s}:{t.content_hash}" for t, s in zip(traces, splits, strict=True))
    return canonical.sha256_hex("\n".join(parts))


def _distribution(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    ordered = sorted(values)

    def pct(q: float) -> float:
        # Nearest-rank percentile: always an observed value.
        return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])

    return {
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
        "mean": sum(ordered) / len(ordered),
        "p50": pct(0.5),
        "p90": pct(0.9),
        "p99": pct(0.99),
    }


def compute_stats(traces: Sequence[Trace], splits: Sequence[int]) -> dict[str, Any]:
    """Counts and distributions of a dataset (the DatasetStats message as a dict)."""
    step_types: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for trace in traces:
        step_types.update(step.type for step in trace.content.steps)
        category = trace.content.meta.get("category", "")
        categories[category if isinstance(category, str) else str(category)] += 1
    return {
        "trace_count": len(traces),
        "train_count": sum(1 for s in splits if s == TRAIN),
        "eval_count": sum(1 for s in splits if s == EVAL),
        "step_count": _distribution([len(t.content.steps) for t in traces]),
        "prompt_chars": _distribution([len(t.content.prompt) for t in traces]),
        "target_chars": _distribution(
            [
                len(render_target([s.content for s in t.content.steps], t.content.final_answer))
                for t in traces
            ]
        ),
        "step_type_counts": dict(sorted(step_types.items())),
        "category_counts": dict(sorted(categories.items())),
    }


def check_trace_names(uids: Sequence[str]) -> None:
    """Explicit members must be unique and within the limit."""
    if not uids:
        raise InvalidArgument.field("trace_names.names", "must name at least one trace")
    if len(uids) > MAX_MEMBERS:
        raise InvalidArgument.field("trace_names.names", f"exceeds {MAX_MEMBERS} traces")
    seen: set[str] = set()
    violations = []
    for n, uid in enumerate(uids):
        if uid in seen:
            violations.append(FieldViolation(f"trace_names.names[{n}]", "is a duplicate"))
        seen.add(uid)
    if violations:
        raise InvalidArgument.fields(violations)


def check_filter(flt: TraceFilter) -> None:
    check_chars(flt.source, "filter.source", None)
    for n, (key, value) in enumerate(flt.meta):
        check_chars(key, f"filter.meta[{n}].key", None)
        check_chars(value, f"filter.meta[{n}].value", None)


def check_split_number(split: int, field: str) -> None:
    """A DatasetSplit number (proto3 enums are open, so any int32 can arrive)."""
    if split not in (UNSPECIFIED, TRAIN, EVAL, ALL):
        raise InvalidArgument.field(field, f"{split} is not a DatasetSplit")


def export_splits(split: int) -> list[int]:
    """The member splits an export of `split` reads, in the order it reads them."""
    return [TRAIN, EVAL] if split in (UNSPECIFIED, ALL) else [split]


def check_chat_template(template: str) -> str:
    """The chat template an export names (empty: the default), or InvalidArgument."""
    name = template or DEFAULT_TEMPLATE
    if name not in CHAT_TEMPLATES:
        raise InvalidArgument.field(
            "chat_template", f"must be one of {', '.join(sorted(CHAT_TEMPLATES))}"
        )
    return name


def sft_example(trace: Trace, template: str) -> SftExample:
    """`trace` as a prompt (with the named chat template) and the target the model learns."""
    content = trace.content
    return SftExample(
        trace_uid=trace.uid,
        prompt=render_prompt(content.prompt, template),
        target=render_target([s.content for s in content.steps], content.final_answer),
        answer=content.final_answer,
    )
