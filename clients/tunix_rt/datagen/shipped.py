"""The datasets shipped in the repository's ``datasets/`` folder, and the held-out set every
generated dataset is kept apart from.

The shipped files (``reasoning-{train,eval,mini}-v1`` and the eval set ``reasoning-evalset-v1``,
each with a manifest) are written and checked by ``datasets/generator.py``. They were made by
version 1.0.0 of the generator and must not change byte for byte, so they are still drawn with
that version's identity and rules: no held-out default (the eval set is held out *from* the train
set) and no repeats (the sets are far too small to exhaust a family).

Since the shipped sets are themselves drawn deterministically, the held-out eval set's prompts
are regenerated here in milliseconds instead of being read from a file: ``held_out_prompts``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tunix_rt.datagen import families as catalog
from tunix_rt.datagen.manifest import manifest_bytes, type_counts
from tunix_rt.datagen.prompts import normalize_prompt
from tunix_rt.datagen.rows import TRACE_VERSION, EvalItem, Trace, to_jsonl
from tunix_rt.datagen.sampling import Identity, TraceStream

# The generator that made the v1 files, named in every one of their rows.
V1_IDENTITY = Identity("tunix_rt.datasets.generator", "1.0.0")
CREATED_BY = ".venv/bin/python datasets/generator.py"
# The held-out set a generated dataset avoids unless told otherwise (tunix_rt.datagen.generate).
DEFAULT_HELD_OUT = "reasoning-eval-v1"


@dataclass(frozen=True)
class DatasetSpec:
    """One shipped dataset: its rows come from drawing ``rows`` rows with ``seed``."""

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
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


def shipped_traces(name: str) -> list[Trace]:
    """The rows of the shipped dataset ``name``, drawn again (KeyError for an unknown name)."""
    spec = SPECS_BY_NAME[name]
    exclude = held_out_prompts(spec.held_out_from) if spec.held_out_from else frozenset()
    stream = TraceStream(
        spec.rows,
        spec.seed,
        catalog.FAMILIES,
        dataset=spec.name,
        identity=V1_IDENTITY,
        exclude=exclude,
    )
    return list(stream)


@functools.cache
def shipped_prompts(name: str) -> tuple[str, ...]:
    """The prompts of the shipped dataset ``name``, as written, in row order."""
    return tuple(t["prompt"] for t in shipped_traces(name))


@functools.cache
def held_out_prompts(name: str = DEFAULT_HELD_OUT) -> frozenset[str]:
    """The prompts of the shipped dataset ``name``, in normal form (``normalize_prompt``)."""
    return frozenset(normalize_prompt(p) for p in shipped_prompts(name))


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


def manifest(spec: DatasetSpec, traces: Sequence[Trace], jsonl: bytes) -> bytes:
    """The manifest of one shipped dataset (the v1 layout)."""
    body = {
        "name": spec.name,
        "description": spec.description,
        "file": f"{spec.name}.jsonl",
        "rows": len(traces),
        "sha256": _sha256(jsonl),
        "trace_version": TRACE_VERSION,
        "generator": V1_IDENTITY.name,
        "generator_version": V1_IDENTITY.version,
        "seed": spec.seed,
        "held_out_from": spec.held_out_from,
        "counts": type_counts(
            [t["meta"]["category"] for t in traces],
            [t["meta"]["task_type"] for t in traces],
            [t["meta"]["difficulty"] for t in traces],
        ),
        "created_by": CREATED_BY,
    }
    return manifest_bytes(body)


def eval_set_manifest(
    spec: EvalSetSpec, source: DatasetSpec, items: Sequence[EvalItem], jsonl: bytes
) -> bytes:
    """The manifest for one eval set: like a dataset's, naming the dataset it was made from."""
    body = {
        "name": spec.name,
        "description": spec.description,
        "file": f"{spec.name}.jsonl",
        "rows": len(items),
        "sha256": _sha256(jsonl),
        "format": "eval-set",
        "generator": V1_IDENTITY.name,
        "generator_version": V1_IDENTITY.version,
        "seed": source.seed,
        "derived_from": source.name,
        "held_out_from": source.held_out_from,
        "counts": type_counts(
            [i["category"] for i in items],
            [i["meta"]["task_type"] for i in items],
            [i["difficulty"] for i in items],
        ),
        "created_by": CREATED_BY,
    }
    return manifest_bytes(body)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_all() -> dict[str, bytes]:
    """Every shipped file, by file name, built in memory."""
    files: dict[str, bytes] = {}
    made: dict[str, list[Trace]] = {}
    for spec in SPECS:
        traces = shipped_traces(spec.name)
        made[spec.name] = traces
        jsonl = to_jsonl(traces)
        files[f"{spec.name}.jsonl"] = jsonl
        files[f"{spec.name}.manifest.json"] = manifest(spec, traces, jsonl)
    for eval_spec in EVAL_SET_SPECS:
        items = eval_items(made[eval_spec.source], eval_spec.name)
        jsonl = to_jsonl(items)
        files[f"{eval_spec.name}.jsonl"] = jsonl
        files[f"{eval_spec.name}.manifest.json"] = eval_set_manifest(
            eval_spec, SPECS_BY_NAME[eval_spec.source], items, jsonl
        )
    return files


def stale_files(files: Mapping[str, bytes], directory: Path) -> list[str]:
    """The names in ``files`` whose copy in ``directory`` is missing or differs."""
    return [name for name, data in files.items() if _read(directory / name) != data]


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None
