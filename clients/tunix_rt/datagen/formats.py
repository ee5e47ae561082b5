"""Trace formats: how a problem's steps are written, for the same prompts and answers.

``v1`` is the catalog's own steps (``families``), the format of the shipped files. ``v2`` rewrites
the steps of the families where a small model trained from scratch has to count or to keep track
of positions, so that every step is a local operation it can learn in minutes (docs/recipes.md
measures each change):

- a running tally on every scan ("o 1, t, y, o 2, x"): the count is the last tally, instead of
  counting a list in one go;
- indexed letters for reversal ("1 u, 2 d, 3 i, 4 b" then "4 b, 3 i, 2 d, 1 u"): each output
  letter is a lookup by its index, not by a position counted from the end.

Measured and left out: the result so far after every column of an addition or subtraction
("so far 52") did not help (docs/recipes.md).

A v2 family draws exactly what its v1 family draws (it calls the v1 builder and rewrites the
steps from the prompt), so the same seed gives the same prompts and answers in both formats and
the held-out rule is the same.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

from tunix_rt.datagen.families import (
    FAMILIES,
    VOWELS,
    Builder,
    Difficulty,
    Family,
    Problem,
    Steps,
)

FORMATS = ("v1", "v2")
DEFAULT_FORMAT = "v2"


def tally(items: Iterable[object], hit: Callable[[str], bool], yes: str = "", no: str = "") -> str:
    """Each item with a running count of hits ("o 1, t, y, o 2"): the count is the last tally."""
    parts, count = [], 0
    for item in items:
        text = str(item)
        if hit(text):
            count += 1
            parts.append(" ".join(x for x in (text, yes, str(count)) if x))
        else:
            parts.append(" ".join(x for x in (text, no) if x))
    return ", ".join(parts)


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def _after(prompt: str, marker: str) -> str:
    """The prompt's text after `marker`, without the final question mark."""
    return prompt.split(marker, 1)[1].rstrip("?").strip()


def _count(problem: Problem, scan: str) -> Steps:
    return (("calc", scan), ("result", f"Count: {problem.answer}"))


def _reverse(problem: Problem) -> Steps:
    s = _after(problem.prompt, "Reverse the string:")
    forward = ", ".join(f"{p + 1} {c}" for p, c in enumerate(s))
    backward = ", ".join(f"{p + 1} {s[p]}" for p in reversed(range(len(s))))
    return (
        ("setup", f"Letters: {forward}"),
        ("calc", f"Last to first: {backward}"),
        ("result", f"Joined: {s[::-1]}"),
    )


def _vowels(problem: Problem) -> Steps:
    s = _after(problem.prompt, "How many vowels are in")
    scan = tally(s, VOWELS.__contains__)
    return (("rule", "Vowels are a, e, i, o, u"), *_count(problem, f"Scan: {scan}"))


def _letter(problem: Problem) -> Steps:
    target = problem.prompt.split("'")[1]
    s = _after(problem.prompt, "' appear in")
    return _count(problem, f"Scan for {target}: " + tally(s, target.__eq__))


def _words(problem: Problem) -> Steps:
    target = problem.prompt.split("'")[1]
    words = _after(problem.prompt, "appear in:").split()
    return _count(problem, f"Scan for {target}: " + tally(words, target.__eq__))


def _even(problem: Problem) -> Steps:
    numbers = _numbers(_after(problem.prompt, "are in:"))
    scan = tally(numbers, lambda n: int(n) % 2 == 0, "even", "odd")
    return (problem.steps[0], *_count(problem, f"Scan: {scan}"))


def _greater(problem: Problem) -> Steps:
    limit, *numbers = _numbers(problem.prompt)
    scan = tally(numbers, lambda n: int(n) > limit, "yes", "no")
    return _count(problem, f"Compare with {limit}: {scan}")


def _multiples(problem: Problem) -> Steps:
    first, listing, result = problem.steps
    if not listing[1].startswith("List: "):  # hard rows divide instead of listing: unchanged
        return problem.steps
    numbers = _numbers(listing[1]) if "none" not in listing[1] else []
    counted = ", ".join(f"{n} is {k + 1}" for k, n in enumerate(numbers)) or "none"
    return (first, ("calc", f"List: {counted}"), result)


_REWRITES: dict[str, Callable[[Problem], Steps]] = {
    "string_reverse": _reverse,
    "count_vowels": _vowels,
    "count_letter": _letter,
    "count_words": _words,
    "count_even": _even,
    "count_greater": _greater,
    "count_multiples": _multiples,
}


def _rewritten(build: Builder, rewrite: Callable[[Problem], Steps]) -> Builder:
    def build_v2(rng: random.Random, difficulty: Difficulty) -> Problem:
        problem = build(rng, difficulty)
        return Problem(problem.prompt, problem.answer, rewrite(problem))

    return build_v2


FAMILIES_V2: tuple[Family, ...] = tuple(
    Family(f.task_type, f.category, _rewritten(f.build, _REWRITES[f.task_type]))
    if f.task_type in _REWRITES
    else f
    for f in FAMILIES
)


def catalog(trace_format: str) -> tuple[Family, ...]:
    """The families of a trace format; ValueError naming the known formats."""
    if trace_format == "v1":
        return FAMILIES
    if trace_format == "v2":
        return FAMILIES_V2
    raise ValueError(f"unknown trace format: {trace_format}; known: {', '.join(FORMATS)}")
