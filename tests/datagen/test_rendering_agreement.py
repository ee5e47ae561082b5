"""A perfect model scores 100 %: every generated trace's training target, rendered exactly as
training renders it, gives back its own final answer through the answer extraction and
comparison that evaluation uses.

This ties three parts that must agree (issue 13): the generator's step texts (tunix_rt.datagen),
the target rendering (tunix_rt.common.rendering) and answer extraction (tunix_rt.models.answers).
A step that contained "Answer:" or an answer the comparison cannot read would fail here. The
test lives in tests/ because the generator may not import service code.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import pytest

from tunix_rt import datagen
from tunix_rt.common.rendering import render_target
from tunix_rt.datagen.rows import Trace
from tunix_rt.models.answers import answers_match, extract_answer, normalize_answer


def _target(trace: Trace) -> str:
    return render_target([step["content"] for step in trace["steps"]], trace["final_answer"])


@pytest.mark.parametrize("trace_format", datagen.FORMATS)
def test_a_perfect_model_scores_100_percent_on_every_family_and_difficulty(
    trace_format: str,
) -> None:
    traces = datagen.generate(2000, seed=4242, trace_format=trace_format)
    slots = {(t["meta"]["task_type"], t["meta"]["difficulty"]) for t in traces}
    assert len(slots) == len(datagen.FAMILIES) * len(datagen.DIFFICULTIES)
    wrong = []
    for trace in traces:
        extracted = extract_answer(_target(trace))
        if extracted != trace["final_answer"] or not answers_match(
            extracted, trace["final_answer"]
        ):
            wrong.append((trace["prompt"], trace["final_answer"], extracted))
    assert wrong == []


def test_a_wrong_answer_from_the_same_family_does_not_score() -> None:
    """The control: the comparison is not vacuous. Each target is scored against another row's
    answer of its family whenever the two answers differ."""
    traces = datagen.generate(600, seed=4243)
    by_family: dict[str, list[Trace]] = defaultdict(list)
    for trace in traces:
        by_family[trace["meta"]["task_type"]].append(trace)
    compared = 0
    for rows in by_family.values():
        for trace, other in pairwise(rows):
            expected = other["final_answer"]
            if normalize_answer(expected) == normalize_answer(trace["final_answer"]):
                continue
            compared += 1
            assert not answers_match(extract_answer(_target(trace)), expected), trace["prompt"]
    assert compared > 400
