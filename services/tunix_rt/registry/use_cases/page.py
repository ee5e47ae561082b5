"""One page of a list, as every List use case returns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tunix_rt.common import pagination

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the token of the next (empty on the last page)."""

    items: list[T]
    next_page_token: str

    @classmethod
    def of(cls, items: list[T], last: Any, filters: Any) -> Page[T]:
        """The page of `items`, continued after the position `last` (None on the last page) by a
        token bound to the request's `filters`."""
        return cls(items, pagination.encode(last, filters) if last is not None else "")
