"""normalize_prompt: the one spelling in which prompts are compared for uniqueness and held-out
exclusion."""

# The unicode minus is one of the spellings under test.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from tunix_rt.datagen import normalize_prompt


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 17 + 35?", "what is 17 + 35?"),
        ("What is 17 + 35?", "  What   is\t17 +\n35? "),
        ("Convert 1,200 m to km.", "Convert 1200 m to km."),
        ("Convert 1,234,567 g to kg.", "Convert 1234567 g to kg."),
        ("Convert 5.0 kg to g.", "Convert 5 kg to g."),
        ("Convert 2.50 kg to g.", "Convert 2.5 kg to g."),
        ("Convert 0.500 t to kg.", "Convert 0.5 t to kg."),
        ("Convert −13 °F to °C.", "Convert -13 °F to °C."),
        ("What is 007 + 1?", "What is 7 + 1?"),
        ("Ben buys 8 apples at $14.00 each.", "ben buys 8 apples at $14 each."),
    ],
)
def test_spellings_of_one_prompt_are_equal(a: str, b: str) -> None:
    assert normalize_prompt(a) == normalize_prompt(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 17 + 35?", "What is 17 + 36?"),
        ("Convert 2.5 kg to g.", "Convert 25 kg to g."),
        ("Convert -13 °F to °C.", "Convert 13 °F to °C."),
        # A list keeps its numbers apart: "1, 200" is two numbers, "1,200" one.
        ("How many even numbers are in: 1, 200, 3?", "How many even numbers are in: 1200, 3?"),
        ("Convert 51 cm to mm.", "Convert 51 mm to cm."),
        ("Reverse the string: ab12", "Reverse the string: ab012"),
    ],
)
def test_different_prompts_stay_different(a: str, b: str) -> None:
    assert normalize_prompt(a) != normalize_prompt(b)


def test_the_normal_form_is_stable() -> None:
    text = "Convert 1,200.50 km to M."
    once = normalize_prompt(text)
    assert once == "convert 1200.5 km to m."
    assert normalize_prompt(once) == once
