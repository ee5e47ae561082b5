"""How tunix_rt.datagen draws rows: seeds, balance, family selection, unique prompts, exclusions,
and the families whose prompts run out (they repeat, reproducibly, instead of failing).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest

from tunix_rt import datagen
from tunix_rt.datagen import families, normalize_prompt, validate_trace
from tunix_rt.datagen.rows import Trace


def test_same_seed_gives_identical_bytes() -> None:
    first = datagen.to_jsonl(datagen.generate(300, seed=7))
    assert first == datagen.to_jsonl(datagen.generate(300, seed=7))


def test_different_seed_gives_different_rows() -> None:
    a = datagen.generate(100, seed=7)
    b = datagen.generate(100, seed=8)
    assert [t["prompt"] for t in a] != [t["prompt"] for t in b]


def test_global_random_state_is_untouched() -> None:
    state = random.getstate()
    datagen.generate(100, seed=3)
    assert random.getstate() == state


def test_families_are_balanced_and_difficulty_cycles() -> None:
    traces = datagen.generate(600, seed=5)
    per_family = Counter(t["meta"]["task_type"] for t in traces)
    assert len(per_family) == len(families.FAMILIES) == 20
    assert set(per_family.values()) == {30}
    per_category = Counter(t["meta"]["category"] for t in traces)
    assert set(per_category) == set(families.CATEGORIES)
    assert set(per_category.values()) == {120}
    per_pair = Counter((t["meta"]["task_type"], t["meta"]["difficulty"]) for t in traces)
    assert set(per_pair.values()) == {10}


def test_rows_name_the_generator_and_their_place() -> None:
    traces = datagen.generate(40, seed=2, dataset="mine")
    assert [t["meta"]["index"] for t in traces] == list(range(40))
    for trace in traces:
        meta = trace["meta"]
        assert (meta["dataset"], meta["seed"]) == ("mine", 2)
        assert (meta["generator"], meta["generator_version"]) == ("tunix_rt.datagen", "2.0.0")
        assert validate_trace(trace) == []


def test_family_and_category_selection() -> None:
    traces = datagen.generate(10, seed=1, families=["addition", "string_reverse"])
    assert {t["meta"]["task_type"] for t in traces} == {"addition", "string_reverse"}
    traces = datagen.generate(40, seed=1, categories=["string", "counting"])
    assert {t["meta"]["category"] for t in traces} == {"string", "counting"}
    assert len({t["meta"]["task_type"] for t in traces}) == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"families": ["no_such_family"]}, "unknown or no task type: no_such_family; known: "),
        ({"families": []}, "unknown or no task type"),
        ({"categories": ["poetry"]}, "unknown or no category: poetry; known: arithmetic"),
        ({"families": ["addition"], "categories": ["string"]}, "not both"),
        ({"held_out": "no-such-set"}, "unknown held-out set"),
    ],
)
def test_bad_selections_name_what_is_known(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        datagen.generate(1, seed=1, **kwargs)
    if "known: " in message:
        assert "addition" in str(caught.value) or "unit_conversion" in str(caught.value)


def test_excluded_prompts_are_redrawn_in_normal_form() -> None:
    first = datagen.generate(40, seed=11)
    # Written differently (case, spacing): the normal form still matches.
    banned = {"  " + t["prompt"].upper().replace(" ", "  ") for t in first}
    again = datagen.generate(40, seed=11, exclude_prompts=banned)
    assert not {normalize_prompt(p) for p in banned} & {
        normalize_prompt(t["prompt"]) for t in again
    }
    assert [t["meta"]["task_type"] for t in again] == [t["meta"]["task_type"] for t in first]


def _first_repeat(traces: list[Trace]) -> dict[str, int]:
    """Per difficulty, the index of the first row whose prompt an earlier row has."""
    seen: set[str] = set()
    first: dict[str, int] = {}
    for trace in traces:
        key = normalize_prompt(trace["prompt"])
        if key in seen:
            first.setdefault(trace["meta"]["difficulty"], trace["meta"]["index"])
        seen.add(key)
    return first


def test_a_family_that_runs_out_repeats_its_prompts_reproducibly() -> None:
    # convert_temperature has 242 distinct prompts over its three difficulties (easy and medium
    # share some); the held-out set has some of them.
    held_out = {p for p in datagen.held_out_prompts() if "°" in p}
    started = time.perf_counter()
    stream = datagen.stream(3000, seed=3, families=["convert_temperature"])
    traces = list(stream)
    elapsed = time.perf_counter() - started
    assert len(traces) == 3000
    assert all(validate_trace(t) == [] for t in traces)
    prompts = {normalize_prompt(t["prompt"]) for t in traces}
    stats = stream.stats.families["convert_temperature"]
    assert (stats.rows, stats.unique, stats.repeated) == (3000, len(prompts), 3000 - len(prompts))
    # Unique first: nearly every prompt that is not held out is used before any repeats.
    assert 242 - len(held_out) - 10 <= len(prompts) <= 242 - len(held_out)
    assert sorted(stats.exhausted) == ["easy", "hard", "medium"]
    assert not prompts & datagen.held_out_prompts()
    assert min(_first_repeat(traces).values()) > 100
    # Cheap once exhausted: one draw per row, not thousands (generous bound for a busy machine).
    assert elapsed < 5
    again = datagen.generate(3000, seed=3, families=["convert_temperature"])
    assert datagen.to_jsonl(again) == datagen.to_jsonl(traces)


def test_a_hundred_thousand_rows() -> None:
    stream = datagen.stream(100_000, seed=13)
    tally = datagen.Tally()
    for trace in stream:
        tally.line(trace)
    assert tally.rows == 100_000
    per_family = tally.counts()["task_type"]
    assert set(per_family.values()) == {5000} and len(per_family) == 20
    stats = stream.stats
    assert stats.unique + stats.repeated == 100_000
    # The families with big prompt spaces never repeat; the small ones do and say so.
    assert stats.families["addition"].repeated == 0
    assert stats.families["string_reverse"].repeated == 0
    assert stats.families["convert_temperature"].unique < 242
    assert stats.families["convert_time"].exhausted
    assert stats.excluded_draws > 0  # the held-out rule was hit, and kept
