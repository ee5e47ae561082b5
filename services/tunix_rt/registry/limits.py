"""Limits that free text and numbers of several resources share, and their checks.

Plain Python. Resource-specific limits live with their resource (`traces.MAX_TEXT_CHARS`,
`eval_sets.MAX_PROMPT` ...); these are the ones every resource's labels and metrics obey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tunix_rt.common.errors import InvalidArgument

# Run display names and owners, and model versions' source runs, are VARCHAR(256) columns.
MAX_LABEL_CHARS = 256


def check_chars(value: str, field: str, limit: int | None = MAX_LABEL_CHARS) -> None:
    """Free text must fit its column and hold no NUL (PostgreSQL text refuses NUL)."""
    if limit is not None and len(value) > limit:
        raise InvalidArgument.field(field, f"is {len(value)} chars; the limit is {limit}")
    if "\x00" in value:
        raise InvalidArgument.field(field, "must not contain NUL characters")


def check_finite(metrics: Mapping[str, float], field: str) -> None:
    """NaN and infinities are not JSON, so no database's JSON column stores them alike."""
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise InvalidArgument.field(f"{field}[{key!r}]", "must be a finite number")
