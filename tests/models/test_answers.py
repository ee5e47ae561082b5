"""Answer extraction and matching: what counts as the same answer for eval answer accuracy."""

# The unicode signs are deliberate: models and datasets write the multiplication sign, the
# unicode minus and the degree sign.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from tunix_rt.models.answers import answers_match, extract_answer, normalize_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ones: 7 + 5 = 12\nAnswer: 52", "52"),
        ("steps\nAnswer:  42.", "42."),
        ("steps\nanswer:42\nmore text", "42"),
        ("ANSWER :  $31.50  \n", "$31.50"),
        ("Answer: 455 °F\nQuestion: next\nAnswer: 7", "455 °F"),  # the first answer counts
        ("no answer line here", None),
        ("Answer:\n", ""),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        ("52", "52"),
        ("42.", "42"),
        ("  42  ", "42"),
        ("$31.50", "31.5"),
        ("31.50", "$31.5"),
        ("31.5", "$31.50"),
        ("1,000", "1000"),
        ("−5", "-5"),
        ("200 km", "200km"),
        ("200 KM", "200 km"),
        ("455°F", "455 °F"),
        ("455 °f.", "455 °F"),
        ("6.229 kg", "6.2290 kg"),
        ("960 min", "960 minutes"),
        ("200", "200 km"),  # a bare number matches the expected unit's value
        ("ocjqx", "ocjqx"),
        ("OCJQX", "ocjqx"),
        ("**abgn**", "abgn"),
        ("'abgn'", "abgn"),
        ("3, 4", "3, 4"),
    ],
)
def test_answers_that_match(predicted: str, expected: str) -> None:
    assert answers_match(predicted, expected)


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        ("53", "52"),
        ("31.51", "$31.50"),
        ("200 m", "200 km"),
        ("455 °C", "455 °F"),
        ("3", "3, 4"),  # a list is text, not the number 3 with a unit
        ("ocjxq", "ocjqx"),
        ("", "52"),
        (None, "52"),
        ("-5", "5"),
    ],
)
def test_answers_that_differ(predicted: str | None, expected: str) -> None:
    assert not answers_match(predicted, expected)


def test_extracted_answers_of_generated_text_compare() -> None:
    generated = "Total cost = number × price\n8 × $14 = $112\nAnswer: $112.00."
    assert answers_match(extract_answer(generated), "$112")


def test_normalized_numbers_keep_value_and_unit() -> None:
    answer = normalize_answer("$1,234.50 USD")
    assert str(answer.value) == "1234.5"
    assert answer.unit == "usd"
    assert normalize_answer("0.0").value == 0
