"""Answer extraction and comparison for answer accuracy; pure functions shared with inference.

A target ends with `Answer: X` (tunix_rt.common.rendering). `extract_answer` finds the first
`Answer:` in generated text (any case and spacing) and returns the rest of that line.
`answers_match` compares two answers after normalisation:

- case, surrounding whitespace, quotes, markdown emphasis and trailing `.,;:!` are ignored;
- numbers compare by value: `31.5`, `31.50`, `$31.50` and `1,000` vs `1000` (a currency sign is
  optional, thousands separators are dropped, the unicode minus is a minus);
- a unit after a number must match when both sides have one (`200 km` = `200km` = `200 KM`,
  `200 km` != `200 m`, `455 °F` = `455°F` = `455 °f`); a bare number matches a number with a unit
  (`200` = `200 km`), since the unit is the question's, not the model's, to choose;
- anything else (words, lists such as `3, 4`) compares as text with whitespace collapsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_ANSWER = re.compile(
    r"answer\s*[:\uff1a]\s*(?P<rest>[^\n]*)", re.IGNORECASE
)  # or a fullwidth colon
_NUMBER = re.compile(
    r"^(?P<sign>[-+]?)\s*(?P<currency>[$€£¥]?)\s*(?P<sign2>[-+]?)"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"\s*(?P<unit>.*)$"
)
# What may follow a number as its unit: no digits and no list punctuation ("3, 4" is not 3).
_UNIT = re.compile(r"^[^\d,;:()\[\]{}+=<>]*$")
_TRAILING = ".,;:!?。"
_WRAPPERS = "\"'`*_"
_UNIT_ALIASES = {
    "minute": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "hour": "hours",
    "hr": "hours",
    "hrs": "hours",
    "h": "hours",
    "second": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "s": "seconds",
    "degf": "°f",
    "degc": "°c",
    "ºf": "°f",
    "ºc": "°c",
}


def extract_answer(text: str) -> str | None:
    """The rest of the line after the first `Answer:` in `text`, stripped; None if absent."""
    match = _ANSWER.search(text)
    if match is None:
        return None
    return match.group("rest").strip()


def _clean(text: str) -> str:
    text = text.replace("\u2212", "-").strip()
    previous = None
    while previous != text:
        previous = text
        text = text.strip().strip(_WRAPPERS).rstrip(_TRAILING).strip()
    return re.sub(r"\s+", " ", text).lower()


@dataclass(frozen=True)
class NormalizedAnswer:
    """An answer as compared: a numeric value with an optional unit, or plain text."""

    value: Decimal | None  # the number, if the answer is one
    unit: str  # the unit after the number ("" if none); or the whole text if not a number


def normalize_answer(answer: str) -> NormalizedAnswer:
    """The comparable form of an answer (see the module docstring)."""
    text = _clean(answer)
    match = _NUMBER.match(text)
    if match is None or not _UNIT.match(match.group("unit")):
        return NormalizedAnswer(None, text)
    digits = match.group("digits").replace(",", "")
    try:
        value = Decimal(digits)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return NormalizedAnswer(None, text)
    if "-" in (match.group("sign"), match.group("sign2")):
        value = -value
    unit = match.group("unit").replace(" ", "")
    unit = _UNIT_ALIASES.get(unit, unit)
    return NormalizedAnswer(value.normalize() if value else Decimal(0), unit)


def answers_match(predicted: str | None, expected: str) -> bool:
    """True when `predicted` (e.g. from `extract_answer`) is the same answer as `expected`."""
    if predicted is None:
        return False
    got, want = normalize_answer(predicted), normalize_answer(expected)
    if got.value is None or want.value is None:
        return got.value is None and want.value is None and got.unit == want.unit
    if got.value != want.value:
        return False
    return not got.unit or not want.unit or got.unit == want.unit
