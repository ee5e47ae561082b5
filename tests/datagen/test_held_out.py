"""The held-out rule: no prompt of the held-out eval set reasoning-eval-v1, in normal form, is in
a training set, shipped or generated; and the package regenerates that set exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunix_rt import datagen
from tunix_rt.datagen import families, normalize_prompt
from tunix_rt.datagen.sampling import TraceStream
from tunix_rt.datagen.shipped import V1_IDENTITY

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def _file_prompts(name: str) -> list[str]:
    lines = (DATASETS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["prompt"] for line in lines]


def test_the_regenerated_held_out_set_is_the_shipped_eval_file() -> None:
    assert list(datagen.shipped_prompts("reasoning-eval-v1")) == _file_prompts("reasoning-eval-v1")
    held_out = datagen.held_out_prompts()
    assert held_out == {normalize_prompt(p) for p in _file_prompts("reasoning-eval-v1")}
    assert len(held_out) == 200


@pytest.mark.parametrize("training_set", ["reasoning-train-v1", "reasoning-mini-v1"])
def test_no_held_out_prompt_is_in_a_shipped_training_set(training_set: str) -> None:
    prompts = {normalize_prompt(p) for p in _file_prompts(training_set)}
    assert len(prompts) == len(_file_prompts(training_set))
    held_out = {normalize_prompt(p) for p in _file_prompts("reasoning-eval-v1")}
    assert len(held_out) == 200
    assert not prompts & held_out


@pytest.mark.parametrize("seed", [0, 2002])
def test_no_held_out_prompt_is_generated(seed: int) -> None:
    stream = datagen.stream(20_000, seed=seed)
    prompts = {normalize_prompt(t["prompt"]) for t in stream}
    assert not prompts & datagen.held_out_prompts()
    # The rule was exercised, not vacuous: draws that hit a held-out prompt were refused.
    assert stream.stats.excluded_draws > 0


def test_without_the_rule_the_same_draws_would_leak() -> None:
    """The control for the test above: the same seed with nothing excluded gives held-out prompts
    (seed 2002 is the eval set's own seed, so many of its rows are the eval set's)."""
    stream = TraceStream(
        2000, 2002, families.FAMILIES, dataset="control", identity=V1_IDENTITY, exclude=frozenset()
    )
    leaked = {normalize_prompt(t["prompt"]) for t in stream} & datagen.held_out_prompts()
    assert len(leaked) > 20
