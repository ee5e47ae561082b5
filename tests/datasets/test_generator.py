"""Tests for datasets/generator.py and the reasoning-*-v1 datasets it ships.

How rows are drawn (seeds, balance, unique prompts, the held-out rule) is tested on the package
itself, in tests/datagen.

The answers are checked by solvers written here from the prompt text alone, and every
``a op b = c`` in a step is recomputed, so a family that prints a wrong sub-result fails even
when its final answer happens to be right.
"""

# The multiplication and division signs are what the generated text uses.
# ruff: noqa: RUF001

from __future__ import annotations

import hashlib
import json
import operator
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.datasets.generator_module import GENERATOR_PATH, families, generator

Row = dict[str, Any]
SHIPPED = {spec.name: spec for spec in generator.SPECS}


def _read_rows(name: str) -> list[Row]:
    path = generator.DATASET_DIR / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[Row]]:
    return {name: _read_rows(name) for name in SHIPPED}


@pytest.fixture(scope="module")
def all_rows(shipped: dict[str, list[Row]]) -> list[Row]:
    return [row for rows in shipped.values() for row in rows]


# --- every answer and every step recomputed --------------------------------------------------


def _canon(x: Fraction) -> str:
    """A number as the datasets write it: no exponent, no trailing zeros."""
    scaled = x * 10**6
    assert scaled.denominator == 1, f"{x} is not a short decimal"
    whole, frac = divmod(abs(scaled.numerator), 10**6)
    sign = "-" if scaled < 0 else ""
    return sign + str(whole) + (f".{frac:06d}".rstrip("0") if frac else "")


def _match(pattern: str, text: str) -> re.Match[str]:
    m = re.fullmatch(pattern, text)
    assert m is not None, f"{text!r} does not look like {pattern!r}"
    return m


def _ints(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)]


# Unit factors, written out again here rather than read from the families.
SCALE = {("km", "m"): 1000, ("m", "cm"): 100, ("cm", "mm"): 10, ("kg", "g"): 1000}
SCALE |= {("t", "kg"): 1000, ("g", "mg"): 1000, ("hours", "minutes"): 60}
SCALE |= {("minutes", "seconds"): 60, ("days", "hours"): 24}


def _solve_arithmetic(p: str) -> str:
    a, op, b = _match(r"What is (\d+) ([-+×÷]) (\d+)\?", p).groups()
    x, y = int(a), int(b)
    if op == "÷":
        assert x % y == 0, "division rows must be exact"
    return str({"+": x + y, "-": x - y, "×": x * y, "÷": x // y}[op])


def _solve_shopping(p: str) -> str:
    bought = re.findall(r"(\d+) \w+ at \$(\d+)", p)
    total = sum(int(q) * int(price) for q, price in bought)
    paid = re.search(r"paying with \$(\d+)", p)
    return f"${int(paid.group(1)) - total}" if paid else f"${total}"


def _solve_travel(p: str) -> str:
    legs = re.findall(r"(\d+) km/h for (\d+) hours", p)
    if legs:
        return f"{sum(int(v) * int(t) for v, t in legs)} km"
    distance, speed = _ints(p)
    assert distance % speed == 0
    return f"{distance // speed} hours"


def _solve_sharing(p: str) -> str:
    m = re.fullmatch(r"(\d+) \w+ are shared equally by (\d+) kids\. .*", p)
    if m:
        return str(int(m.group(1)) // int(m.group(2)))
    m = re.search(r"has (\d+) bags of (\d+) \w+(?:, keeps (\d+))?.* among (\d+) friends", p)
    assert m is not None
    bags, per_bag, kept, people = (int(g or 0) for g in m.groups())
    rest = bags * per_bag - kept
    assert rest % people == 0
    return str(rest // people)


def _solve_inventory(p: str) -> str:
    m = re.search(r"has (\d+) \w+, gets (\d+) more, then gives away (\d+)\.", p)
    if m:
        start, more, gone = map(int, m.groups())
        return str(start + more - gone)
    m = re.search(r"has (\d+) \w+, buys (\d+) packs of (\d+), then (.*)\. How", p)
    assert m is not None
    have = int(m.group(1)) + int(m.group(2)) * int(m.group(3))
    given = _ints(m.group(4))
    gone = given[0] if len(given) == 1 else given[0] * given[1]
    return str(have - gone)


def _solve_count_multiples(p: str) -> str:
    k, lo, hi = _ints(p)
    return str(sum(1 for n in range(lo, hi + 1) if n % k == 0))


def _solve_scaled(p: str) -> str:
    value, src, dst = _match(r"Convert ([\d.]+) (\w+) to (\w+)\.", p).groups()
    if (src, dst) in SCALE:
        return f"{_canon(Fraction(value) * SCALE[src, dst])} {dst}"
    return f"{_canon(Fraction(value) / SCALE[dst, src])} {dst}"


def _solve_time(p: str) -> str:
    m = re.fullmatch(r"Convert (\d+) minutes to hours and minutes\.", p)
    if m:
        hours, minutes = divmod(int(m.group(1)), 60)
        return f"{hours} hours {minutes} minutes"
    m = re.fullmatch(r"Convert (\d+) hours (\d+) minutes to minutes\.", p)
    if m:
        return f"{int(m.group(1)) * 60 + int(m.group(2))} minutes"
    return _solve_scaled(p)


def _solve_temperature(p: str) -> str:
    (degrees,) = _ints(p)
    if p.endswith("°C to °F."):
        return f"{_canon(Fraction(degrees) * 9 / 5 + 32)} °F"
    return f"{_canon((Fraction(degrees) - 32) * 5 / 9)} °C"


SOLVERS: dict[str, Callable[[str], str]] = {
    "addition": _solve_arithmetic,
    "subtraction": _solve_arithmetic,
    "multiplication": _solve_arithmetic,
    "division": _solve_arithmetic,
    "shopping": _solve_shopping,
    "travel": _solve_travel,
    "sharing": _solve_sharing,
    "inventory": _solve_inventory,
    "string_reverse": lambda p: p.removeprefix("Reverse the string: ")[::-1],
    "string_sort": lambda p: "".join(sorted(p.split()[4])),
    "count_vowels": lambda p: str(sum(c in "aeiou" for c in p.split()[-1].rstrip("?"))),
    "count_letter": lambda p: str(p.split()[-1].rstrip("?").count(p.split("'")[1])),
    "count_words": lambda p: str(p.split(": ")[1].rstrip("?").split().count(p.split("'")[1])),
    "count_even": lambda p: str(sum(n % 2 == 0 for n in _ints(p.split(": ")[1]))),
    "count_greater": lambda p: str(sum(n > _ints(p)[0] for n in _ints(p)[1:])),
    "count_multiples": _solve_count_multiples,
    "convert_length": _solve_scaled,
    "convert_mass": _solve_scaled,
    "convert_time": _solve_time,
    "convert_temperature": _solve_temperature,
}


def test_every_family_has_a_solver() -> None:
    assert set(SOLVERS) == {f.task_type for f in families.FAMILIES}


def test_every_answer_matches_an_independent_solver(all_rows: list[Row]) -> None:
    solved = [(row, SOLVERS[row["meta"]["task_type"]](row["prompt"])) for row in all_rows]
    wrong = [
        (r["prompt"], r["final_answer"], want) for r, want in solved if r["final_answer"] != want
    ]
    assert wrong == []


NUM = r"-?\$?\d+(?:\.\d+)?"
# "a op b [op c ...] = r", optionally followed by a long-division remainder or "(whole part)".
CHAIN = re.compile(
    rf"(?<![\d.$])({NUM}(?: [-+×÷] {NUM})+) = ({NUM})(, remainder \d+| \(whole part\))?"
)


def _value(token: str) -> Fraction:
    return Fraction(token.replace("$", ""))


OPS: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": operator.add,
    "-": operator.sub,
    "×": operator.mul,
    "÷": operator.truediv,
}


def _check_chain(chain: str, result: str, tail: str | None) -> bool:
    """Evaluate left to right: steps chain only + and -, or one product then a sum."""
    tokens = chain.split(" ")
    total = _value(tokens[0])
    for op, operand in zip(tokens[1::2], tokens[2::2], strict=True):
        if op == "÷" and tail:  # long division and "whole part": the quotient is floored
            quotient, rest = divmod(total, _value(operand))
            if tail.startswith(", remainder") and rest != int(tail.split()[-1]):
                return False
            total = Fraction(quotient)
        else:
            total = OPS[op](total, _value(operand))
    return total == _value(result)


def test_the_step_checker_catches_wrong_work() -> None:
    assert _check_chain("7 + 2 + 1", "10", None)
    assert not _check_chain("7 + 2", "8", None)
    assert _check_chain("43 ÷ 5", "8", ", remainder 3")
    assert not _check_chain("43 ÷ 5", "8", ", remainder 2")
    assert not _check_chain("$200 - $112", "$87", None)
    assert _check_chain("954 ÷ 8", "119", " (whole part)")


# Families whose steps only name or list things; every other family must show checked arithmetic.
SCAN_ONLY = {"string_reverse", "string_sort", "count_vowels", "count_letter", "count_words"}
SCAN_ONLY |= {"count_even", "count_greater", "count_multiples"}


def test_every_worked_step_is_arithmetically_true(all_rows: list[Row]) -> None:
    wrong, unchecked = [], []
    for row in all_rows:
        checked = 0
        for step in row["steps"]:
            # "1 carried" and "1 lent" are plain operands once the word is dropped.
            text = step["content"].replace(" carried", "").replace(" lent", "")
            for chain, result, tail in CHAIN.findall(text):
                checked += 1
                if not _check_chain(chain, result, tail or None):
                    wrong.append(step["content"])
            split = re.fullmatch(r"Split (\d+) = ([\d +]+)", text)
            if split:
                checked += 1
                if int(split.group(1)) != sum(_ints(split.group(2))):
                    wrong.append(text)
        if not checked and row["meta"]["task_type"] not in SCAN_ONLY:
            unchecked.append(row["prompt"])  # the pattern missed this family's steps
    assert wrong == []
    assert unchecked == []


def _listed(text: str) -> list[str]:
    """The items of a "Label: a, b, c" step ("none" is the empty list)."""
    items = text.split(": ", 1)[1]
    return [] if items == "none" else items.split(", ")


def _expected_listing(row: Row) -> dict[str, list[str]]:
    """What each scanning step must list, worked out from the prompt."""
    p, kind = row["prompt"], row["meta"]["task_type"]
    if kind == "count_vowels":
        return {"Vowels found": [c for c in p.split()[-1].rstrip("?") if c in "aeiou"]}
    if kind in ("count_letter", "count_words"):
        target = p.split("'")[1]
        seq = p.split()[-1].rstrip("?") if kind == "count_letter" else p.split(": ")[1][:-1].split()
        return {f"Positions of {target}": [str(k + 1) for k, x in enumerate(seq) if x == target]}
    if kind == "count_even":
        return {"Even": [str(n) for n in _ints(p.split(": ")[1]) if n % 2 == 0]}
    if kind == "count_greater":
        limit, *numbers = _ints(p)
        marks = [f"{n} {'yes' if n > limit else 'no'}" for n in numbers]
        return {f"Compare with {limit}": marks}
    if kind == "count_multiples" and row["meta"]["difficulty"] != "hard":
        k, lo, hi = _ints(p)
        return {"List": [str(n) for n in range(lo, hi + 1) if n % k == 0]}
    return {}


def test_scanning_steps_list_exactly_the_matches(all_rows: list[Row]) -> None:
    for row in all_rows:
        expected = _expected_listing(row)
        steps = {s["content"].split(": ", 1)[0]: s["content"] for s in row["steps"]}
        for label, items in expected.items():
            assert _listed(steps[label]) == items, row["prompt"]
        last = row["steps"][-1]["content"]
        if last.startswith("Count: "):
            assert last.split()[-1] == row["final_answer"], row["prompt"]


# --- limits and format ----------------------------------------------------------------------


def test_rows_respect_the_limits_and_stay_compact(all_rows: list[Row]) -> None:
    for row in all_rows:
        assert generator.validate_trace(row) == [], row["prompt"]
        assert len(row["prompt"]) <= 120, row["prompt"]
        assert len(row["final_answer"]) <= 24, row["final_answer"]
        assert [s["i"] for s in row["steps"]] == list(range(len(row["steps"])))
        assert list(row) == ["trace_version", "prompt", "final_answer", "steps", "meta"]
        assert list(row["meta"]) == list(generator.Meta.__annotations__)
        assert row["meta"]["generator"] == "tunix_rt.datasets.generator"
        assert row["meta"]["difficulty"] in families.DIFFICULTIES


def test_lines_are_the_fixed_compact_serialization(shipped: dict[str, list[Row]]) -> None:
    for name in SHIPPED:
        text = (generator.DATASET_DIR / f"{name}.jsonl").read_text(encoding="utf-8")
        assert text.endswith("\n")
        for line, row in zip(text.splitlines(), shipped[name], strict=True):
            assert line == generator.serialize(row)


# --- the shipped datasets ---------------------------------------------------------------------


def test_shipped_row_counts_and_balance(shipped: dict[str, list[Row]]) -> None:
    expected = {"reasoning-train-v1": 2000, "reasoning-eval-v1": 200, "reasoning-mini-v1": 120}
    assert {name: len(rows) for name, rows in shipped.items()} == expected
    for name, rows in shipped.items():
        per_family = Counter(r["meta"]["task_type"] for r in rows)
        assert set(per_family.values()) == {expected[name] // 20}, name
        assert len({r["prompt"] for r in rows}) == len(rows), f"{name} repeats a prompt"
        assert [r["meta"]["index"] for r in rows] == list(range(len(rows)))
        assert {r["meta"]["dataset"] for r in rows} == {name}


def test_eval_is_held_out_from_train(shipped: dict[str, list[Row]]) -> None:
    train = {r["prompt"] for r in shipped["reasoning-train-v1"]}
    assert not train & {r["prompt"] for r in shipped["reasoning-eval-v1"]}
    assert SHIPPED["reasoning-eval-v1"].seed != SHIPPED["reasoning-train-v1"].seed


def test_mini_is_the_head_of_train(shipped: dict[str, list[Row]]) -> None:
    mini, train = shipped["reasoning-mini-v1"], shipped["reasoning-train-v1"]
    assert [r["prompt"] for r in mini] == [r["prompt"] for r in train[: len(mini)]]
    assert [r["steps"] for r in mini] == [r["steps"] for r in train[: len(mini)]]


def test_manifests_match_their_files(shipped: dict[str, list[Row]]) -> None:
    for name, rows in shipped.items():
        data = (generator.DATASET_DIR / f"{name}.jsonl").read_bytes()
        manifest = json.loads((generator.DATASET_DIR / f"{name}.manifest.json").read_text())
        assert manifest["name"] == name
        assert manifest["file"] == f"{name}.jsonl"
        assert manifest["rows"] == len(rows) == data.count(b"\n")
        assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["seed"] == SHIPPED[name].seed == rows[0]["meta"]["seed"]
        assert manifest["generator"] == rows[0]["meta"]["generator"]
        assert manifest["generator_version"] == rows[0]["meta"]["generator_version"]
        assert manifest["created_by"] == ".venv/bin/python datasets/generator.py"
        assert manifest["description"]
        for key in ("category", "task_type", "difficulty"):
            assert manifest["counts"][key] == dict(Counter(r["meta"][key] for r in rows)), key


def test_shipped_files_match_the_generator(capsys: pytest.CaptureFixture[str]) -> None:
    assert generator.main(["--check"]) == 0
    assert "match" in capsys.readouterr().out


def test_check_fails_on_stale_or_missing_files(tmp_path: Path) -> None:
    assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 1
    assert generator.main(["--out-dir", str(tmp_path)]) == 0
    assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 0
    mini = tmp_path / "reasoning-mini-v1.jsonl"
    mini.write_bytes(mini.read_bytes().replace(b'"1.0"', b'"1.1"', 1))
    assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 1


def test_runs_as_the_documented_script() -> None:
    done = subprocess.run(
        [sys.executable, str(GENERATOR_PATH), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
