"""Tests for the shipped eval set, datasets/reasoning-evalset-v1.jsonl: the held-out eval
dataset's rows in the eval-set file format, with a manifest that matches the file.

That `tunix-rt evalsets import` reads the file and the registry stores every item is tested
through a real server in tests/registry/test_eval_sets.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any

import pytest

from tests.datasets.generator_module import generator

Row = dict[str, Any]
EVAL_SET = "reasoning-evalset-v1"
SOURCE = "reasoning-eval-v1"


def _read_rows(name: str) -> list[Row]:
    path = generator.DATASET_DIR / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def items() -> list[Row]:
    return _read_rows(EVAL_SET)


def test_the_eval_set_is_declared_from_the_held_out_dataset() -> None:
    (spec,) = generator.EVAL_SET_SPECS
    assert (spec.name, spec.source) == (EVAL_SET, SOURCE)
    source = {s.name: s for s in generator.SPECS}[SOURCE]
    assert source.held_out_from == "reasoning-train-v1"


def test_items_are_the_eval_datasets_rows_in_order(items: list[Row]) -> None:
    traces = _read_rows(SOURCE)
    assert len(items) == len(traces) == 200
    for item, trace in zip(items, traces, strict=True):
        meta = trace["meta"]
        assert item == {
            "id": f"{EVAL_SET}-{meta['index']:03d}",
            "prompt": trace["prompt"],
            "expected_answer": trace["final_answer"],
            "category": meta["category"],
            "difficulty": meta["difficulty"],
            "meta": {"dataset": SOURCE, "task_type": meta["task_type"], "index": meta["index"]},
        }
    assert len({i["id"] for i in items}) == len(items)


def test_no_item_is_in_the_training_sets(items: list[Row]) -> None:
    prompts = {i["prompt"] for i in items}
    for name in ("reasoning-train-v1", "reasoning-mini-v1"):
        assert not prompts & {r["prompt"] for r in _read_rows(name)}, name


def test_items_respect_the_registrys_eval_set_limits(items: list[Row]) -> None:
    # Limits of tunix_rt.registry.eval_sets: text required, id <= 256, answer <= 10,000 chars.
    for item in items:
        assert 1 <= len(item["id"]) <= 256 and item["prompt"].strip()
        assert 1 <= len(item["expected_answer"].strip()) <= 10_000
        assert list(item) == ["id", "prompt", "expected_answer", "category", "difficulty", "meta"]


def test_lines_are_the_fixed_compact_serialization(items: list[Row]) -> None:
    text = (generator.DATASET_DIR / f"{EVAL_SET}.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert text.splitlines() == [generator.serialize(item) for item in items]


def test_manifest_matches_the_file(items: list[Row]) -> None:
    data = (generator.DATASET_DIR / f"{EVAL_SET}.jsonl").read_bytes()
    manifest = json.loads((generator.DATASET_DIR / f"{EVAL_SET}.manifest.json").read_text())
    source = json.loads((generator.DATASET_DIR / f"{SOURCE}.manifest.json").read_text())
    assert manifest["name"] == EVAL_SET
    assert manifest["file"] == f"{EVAL_SET}.jsonl"
    assert manifest["format"] == "eval-set"
    assert manifest["rows"] == len(items) == data.count(b"\n")
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["derived_from"] == SOURCE
    assert manifest["held_out_from"] == source["held_out_from"] == "reasoning-train-v1"
    assert (manifest["seed"], manifest["generator_version"]) == (
        source["seed"],
        source["generator_version"],
    )
    assert manifest["created_by"] == ".venv/bin/python datasets/generator.py"
    assert manifest["description"]
    assert manifest["counts"]["category"] == dict(Counter(i["category"] for i in items))
    assert manifest["counts"]["difficulty"] == dict(Counter(i["difficulty"] for i in items))
    assert manifest["counts"]["task_type"] == dict(Counter(i["meta"]["task_type"] for i in items))
    assert manifest["counts"] == source["counts"]


def test_the_readme_documents_the_format_with_a_shipped_line(items: list[Row]) -> None:
    readme = (generator.DATASET_DIR / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Eval-set files") :]
    (example,) = re.findall(r"```json\n(.*?)\n```", section, flags=re.DOTALL)[:1]
    assert json.loads(example) in items
    for field in ("id", "prompt", "expected_answer", "category", "difficulty", "section", "meta"):
        assert f"`{field}`" in section, field
