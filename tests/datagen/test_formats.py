"""Trace formats (tunix_rt.datagen.formats): v2 writes other steps for the same problems."""

from __future__ import annotations

import random

import pytest

from tunix_rt import datagen
from tunix_rt.datagen.formats import FAMILIES_V2, catalog, tally


def test_v2_draws_the_same_prompts_and_answers_as_v1_for_a_seed() -> None:
    v1 = datagen.generate(1200, seed=77, trace_format="v1")
    v2 = datagen.generate(1200, seed=77, trace_format="v2")
    assert [(t["prompt"], t["final_answer"]) for t in v1] == [
        (t["prompt"], t["final_answer"]) for t in v2
    ]
    changed = {t1["meta"]["task_type"] for t1, t2 in zip(v1, v2, strict=True) if t1 != t2}
    # Every rewritten family's steps differ; the meta differs in the version for all.
    assert {t["meta"]["generator_version"] for t in v2} == {"2.0.0"}
    assert len(changed) == len(datagen.FAMILIES)


@pytest.mark.parametrize("difficulty", datagen.DIFFICULTIES)
def test_every_v2_tally_ends_at_the_answer(difficulty: str) -> None:
    """A scan's last tally is the count the answer states (0 when nothing matched)."""
    for family in FAMILIES_V2:
        if family.category not in ("counting", "string") or family.task_type in (
            "string_reverse",
            "string_sort",
            "count_multiples",
        ):
            continue
        rng = random.Random(5)
        for _ in range(200):
            problem = family.build(rng, difficulty)  # type: ignore[arg-type]
            scan = next(text for _, text in problem.steps if ": " in text and "," in text)
            tallies = [part.split()[-1] for part in scan.split(": ", 1)[1].split(", ")]
            counts = [int(t) for t in tallies if t.isdigit()]
            assert (counts[-1] if counts else 0) == int(problem.answer), problem


def test_v2_reversal() -> None:
    by_type = {f.task_type: f for f in FAMILIES_V2}
    rng = random.Random(3)
    reverse = by_type["string_reverse"].build(rng, "easy")
    letters = reverse.prompt.rsplit(" ", 1)[1]
    assert reverse.steps[1][1] == "Last to first: " + ", ".join(
        f"{p + 1} {letters[p]}" for p in reversed(range(len(letters)))
    )


def test_tally_and_unknown_formats() -> None:
    assert tally("otyox", "o".__eq__) == "o 1, t, y, o 2, x"
    assert tally([3, 4], lambda n: int(n) % 2 == 0, "even", "odd") == "3 odd, 4 even 1"
    with pytest.raises(ValueError, match="known: v1, v2"):
        catalog("v3")
    with pytest.raises(ValueError, match="known: v1, v2"):
        datagen.generate(10, seed=1, trace_format="v9")
