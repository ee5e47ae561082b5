"""Deterministic generator for tunix-rt's own reasoning-trace datasets.

Regenerate every shipped file (the three ``reasoning-*-v1.jsonl`` trace datasets, the
``reasoning-evalset-v1.jsonl`` eval set, and their manifests)::

    .venv/bin/python datasets/generator.py

Check that the shipped files are exactly what this code produces (exit status 1 if not)::

    .venv/bin/python datasets/generator.py --check

Each row is one trace in the registry's format (``trace_version``, ``prompt``, ``final_answer``,
``steps``, ``meta``). The task families live in ``families.py``; this module schedules them,
keeps prompts unique, holds the eval set out of the training set, checks every trace against the
registry's limits, and writes the JSONL files and manifests. The eval set is the held-out eval
dataset's rows in the format ``tunix-rt evalsets import`` reads (``id``, ``prompt``,
``expected_answer``, ``category``, ``difficulty``, ``meta``). All randomness comes from one
``random.Random(seed)`` per dataset, so the same seed gives byte-identical output.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypedDict


def _load_sibling(name: str) -> ModuleType:
    """Import ``datasets/<name>.py`` by path under a name no other module can take.

    ``datasets`` is not an installed package (and the name belongs to Hugging Face's library),
    so a plain import would depend on how this file was started: as a script, or from a test.
    """
    qualname = f"tunix_rt_datasets_{name}"
    if qualname in sys.modules:
        return sys.modules[qualname]
    spec = importlib.util.spec_from_file_location(qualname, Path(__file__).with_name(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name}.py next to {__file__}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualname] = module  # dataclasses look their module up here while being built
    spec.loader.exec_module(module)
    return module


# Named "catalog" here because generate() takes a parameter called "families" (the public API).
if TYPE_CHECKING:  # mypy resolves the sibling from the repository root
    from datasets import families as catalog
else:
    catalog = _load_sibling("families")

GENERATOR = "tunix_rt.datasets.generator"
GENERATOR_VERSION = "1.0.0"
TRACE_VERSION = "1.0"
CREATED_BY = ".venv/bin/python datasets/generator.py"
DATASET_DIR = Path(__file__).resolve().parent
# Redraws allowed for one row before giving up; far above what any family needs, low enough
# that a family whose prompt space is too small fails loudly instead of looping forever.
MAX_DRAWS_PER_ROW = 10_000

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


@dataclass(frozen=True)
class DatasetSpec:
    """One shipped dataset: its rows come from ``generate(rows, seed)``."""

    name: str
    rows: int
    seed: int
    description: str
    held_out_from: str | None = None  # name of an earlier spec whose prompts this one avoids


TRAIN_SEED = 1001
EVAL_SEED = 2002
SPECS = (
    DatasetSpec(
        "reasoning-train-v1",
        2000,
        TRAIN_SEED,
        "Training set: 20 task families in 5 categories, 100 rows per family.",
    ),
    DatasetSpec(
        "reasoning-eval-v1",
        200,
        EVAL_SEED,
        "Held-out eval set: 10 rows per family; no prompt also appears in reasoning-train-v1.",
        held_out_from="reasoning-train-v1",
    ),
    # Same seed as train, so these rows are the first 120 of reasoning-train-v1 (renamed): a
    # balanced subset (6 per family) that is held out from the eval set like the train set is.
    DatasetSpec(
        "reasoning-mini-v1",
        120,
        TRAIN_SEED,
        "Small set for fast tests and demos: the first 120 rows of reasoning-train-v1.",
    ),
)


@dataclass(frozen=True)
class EvalSetSpec:
    """One shipped eval set: every row of the trace dataset ``source``, as an eval-set item."""

    name: str
    source: str  # name of the DatasetSpec whose rows become the items
    description: str


EVAL_SET_SPECS = (
    # Made from the held-out eval split, so no item's prompt is in the training set.
    EvalSetSpec(
        "reasoning-evalset-v1",
        "reasoning-eval-v1",
        "Eval set for `tunix-rt evalsets import`: the 200 prompts and answers of "
        "reasoning-eval-v1, none of them in reasoning-train-v1.",
    ),
)


def select_families(task_types: Sequence[str] | None = None) -> tuple[catalog.Family, ...]:
    """The families to draw from, in the generator's fixed order; all of them by default."""
    if task_types is None:
        return catalog.FAMILIES
    known = {f.task_type for f in catalog.FAMILIES}
    unknown = sorted(set(task_types) - known)
    if unknown or not task_types:
        raise ValueError(f"unknown or no task types: {unknown}; known: {sorted(known)}")
    return tuple(f for f in catalog.FAMILIES if f.task_type in task_types)


def generate(
    n: int,
    seed: int,
    families: Sequence[str] | None = None,
    *,
    dataset: str = "reasoning-custom",
    exclude_prompts: Collection[str] = frozenset(),
) -> list[Trace]:
    """Generate ``n`` traces with unique prompts, none of them in ``exclude_prompts``.

    Row ``k`` uses family ``k mod F`` and cycles easy, medium, hard once per round of the F
    families, so counts are balanced by construction rather than by chance. A prompt already
    used (or excluded) is redrawn for the same row, which keeps that balance.
    """
    chosen = select_families(families)
    rng = random.Random(seed)
    seen: set[str] = set()
    traces: list[Trace] = []
    for index in range(n):
        family = chosen[index % len(chosen)]
        difficulty = _difficulty(index // len(chosen))
        problem = _draw_unique(rng, family, difficulty, seen, exclude_prompts)
        seen.add(problem.prompt)
        trace: Trace = {
            "trace_version": TRACE_VERSION,
            "prompt": problem.prompt,
            "final_answer": problem.answer,
            "steps": [{"i": i, "type": t, "content": c} for i, (t, c) in enumerate(problem.steps)],
            "meta": {
                "dataset": dataset,
                "generator": GENERATOR,
                "generator_version": GENERATOR_VERSION,
                "seed": seed,
                "category": family.category,
                "task_type": family.task_type,
                "difficulty": difficulty,
                "index": index,
            },
        }
        problems = validate_trace(trace)
        if problems:
            raise ValueError(f"{family.task_type} row {index} breaks the limits: {problems}")
        traces.append(trace)
    return traces


def _difficulty(round_number: int) -> catalog.Difficulty:
    return catalog.DIFFICULTIES[round_number % len(catalog.DIFFICULTIES)]


def _draw_unique(
    rng: random.Random,
    family: catalog.Family,
    difficulty: catalog.Difficulty,
    seen: set[str],
    exclude: Collection[str],
) -> catalog.Problem:
    for _ in range(MAX_DRAWS_PER_ROW):
        problem = family.build(rng, difficulty)
        if problem.prompt not in seen and problem.prompt not in exclude:
            return problem
    raise RuntimeError(f"{family.task_type}/{difficulty}: no new prompt in {MAX_DRAWS_PER_ROW}")


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


def eval_items(traces: Sequence[Trace], name: str) -> list[EvalItem]:
    """``traces`` as the items of the eval set ``name``: each prompt with its final answer."""
    return [
        {
            "id": f"{name}-{t['meta']['index']:03d}",
            "prompt": t["prompt"],
            "expected_answer": t["final_answer"],
            "category": t["meta"]["category"],
            "difficulty": t["meta"]["difficulty"],
            "meta": {
                "dataset": t["meta"]["dataset"],
                "task_type": t["meta"]["task_type"],
                "index": t["meta"]["index"],
            },
        }
        for t in traces
    ]


def serialize(row: Mapping[str, object]) -> str:
    """One JSONL line, spaced like the original tunix-rt's data files; keys in the dicts' order."""
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


def to_jsonl(rows: Sequence[Mapping[str, object]]) -> bytes:
    return "".join(serialize(r) + "\n" for r in rows).encode("utf-8")


def manifest(spec: DatasetSpec, traces: Sequence[Trace], jsonl: bytes) -> bytes:
    """The manifest for one dataset; deterministic (no timestamps), so ``--check`` can compare."""

    body = {
        "name": spec.name,
        "description": spec.description,
        "file": f"{spec.name}.jsonl",
        "rows": len(traces),
        "sha256": hashlib.sha256(jsonl).hexdigest(),
        "trace_version": TRACE_VERSION,
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "seed": spec.seed,
        "held_out_from": spec.held_out_from,
        "counts": _type_counts(
            [t["meta"]["category"] for t in traces],
            [t["meta"]["task_type"] for t in traces],
            [t["meta"]["difficulty"] for t in traces],
        ),
        "created_by": CREATED_BY,
    }
    return _manifest_bytes(body)


def eval_set_manifest(
    spec: EvalSetSpec, source: DatasetSpec, items: Sequence[EvalItem], jsonl: bytes
) -> bytes:
    """The manifest for one eval set: like a dataset's, naming the dataset it was made from."""
    body = {
        "name": spec.name,
        "description": spec.description,
        "file": f"{spec.name}.jsonl",
        "rows": len(items),
        "sha256": hashlib.sha256(jsonl).hexdigest(),
        "format": "eval-set",
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "seed": source.seed,
        "derived_from": source.name,
        "held_out_from": source.held_out_from,
        "counts": _type_counts(
            [i["category"] for i in items],
            [i["meta"]["task_type"] for i in items],
            [i["difficulty"] for i in items],
        ),
        "created_by": CREATED_BY,
    }
    return _manifest_bytes(body)


def _manifest_bytes(body: Mapping[str, object]) -> bytes:
    return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _type_counts(
    categories: Sequence[str], task_types: Sequence[str], difficulties: Sequence[str]
) -> dict[str, dict[str, int]]:
    return {
        "category": _counts(categories, catalog.CATEGORIES),
        "task_type": _counts(task_types),
        "difficulty": _counts(difficulties, catalog.DIFFICULTIES),
    }


def _counts(values: Iterable[str], order: Sequence[str] | None = None) -> dict[str, int]:
    """Counts keyed in ``order`` (alphabetical when not given), so manifests never reorder."""
    counter = Counter(values)
    return {key: counter[key] for key in (order or sorted(counter)) if key in counter}


def build_all() -> dict[str, bytes]:
    """Every shipped file, by file name, built in memory."""
    files: dict[str, bytes] = {}
    prompts: dict[str, frozenset[str]] = {}
    made: dict[str, list[Trace]] = {}
    for spec in SPECS:
        exclude = prompts[spec.held_out_from] if spec.held_out_from else frozenset()
        traces = generate(spec.rows, spec.seed, dataset=spec.name, exclude_prompts=exclude)
        prompts[spec.name] = frozenset(t["prompt"] for t in traces)
        made[spec.name] = traces
        jsonl = to_jsonl(traces)
        files[f"{spec.name}.jsonl"] = jsonl
        files[f"{spec.name}.manifest.json"] = manifest(spec, traces, jsonl)
    specs = {spec.name: spec for spec in SPECS}
    for eval_spec in EVAL_SET_SPECS:
        items = eval_items(made[eval_spec.source], eval_spec.name)
        jsonl = to_jsonl(items)
        files[f"{eval_spec.name}.jsonl"] = jsonl
        files[f"{eval_spec.name}.manifest.json"] = eval_set_manifest(
            eval_spec, specs[eval_spec.source], items, jsonl
        )
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DATASET_DIR,
        help="where the files go (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate in memory and exit 1 if any file in --out-dir differs; write nothing",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    files = build_all()
    if args.check:
        stale = [n for n, data in files.items() if _read(out_dir / n) != data]
        for name in stale:
            print(f"differs from the generator: {out_dir / name}", file=sys.stderr)
        if stale:
            print(f"regenerate with: {CREATED_BY}", file=sys.stderr)
            return 1
        print(f"all {len(files)} files in {out_dir} match the generator")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
        print(f"wrote {out_dir / name} ({len(data)} bytes)")
    return 0


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


if __name__ == "__main__":
    raise SystemExit(main())
