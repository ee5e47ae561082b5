"""The normal form two prompts are compared in when the generator decides whether they are the same.

Uniqueness within a dataset and every held-out exclusion compare ``normalize_prompt(p)``, not the
raw text, so that a held-out prompt cannot come back into a training set written differently:
``What is 1,200 + 5.0?`` and ``what is  1200 + 5?`` are one prompt.
"""

from __future__ import annotations

import re

# A number: digits with optional thousands separators (only in groups of exactly three, so a list
# written "1,2,3" stays three numbers) and an optional fraction.
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])")
_MINUS = str.maketrans({"\u2212": "-", "\u2012": "-", "\u2013": "-", "\ufe63": "-", "\uff0d": "-"})


def normalize_prompt(prompt: str) -> str:
    """``prompt`` lowercased, with whitespace collapsed to single spaces and trimmed, every dash
    that means minus written ``-``, and every number in one spelling: no thousands separators,
    no leading zeros, no trailing zeros after the point (``5.0`` -> ``5``, ``2.50`` -> ``2.5``)."""
    text = " ".join(prompt.translate(_MINUS).lower().split())
    return _NUMBER.sub(_number, text)


def _number(match: re.Match[str]) -> str:
    whole = match.group(1).replace(",", "").lstrip("0") or "0"
    fraction = (match.group(2) or "").rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole
