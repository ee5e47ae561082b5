"""Page sizes and opaque page tokens shared by every List method.

A token is base64url JSON holding the position to continue after and a fingerprint of the
request's filters, so a token reused with other filters is refused instead of silently skipping.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tunix_rt.common import canonical
from tunix_rt.common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(
    requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    """The effective page size: default when 0, clamped to the maximum; negative is an error."""
    if requested < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    return min(requested or default, maximum)


def fingerprint(filters: Any) -> str:
    return canonical.sha256_hex(canonical.dumps(filters))[:16]


def encode(position: Any, filters: Any) -> str:
    data = canonical.dumps({"p": position, "f": fingerprint(filters)})
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode(token: str, filters: Any) -> Any:
    """The position stored in `token`, or None for an empty token."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position, mark = data["p"], data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument.field("page_token", "is not a token this server issued") from None
    if mark != fingerprint(filters):
        raise InvalidArgument.field("page_token", "was issued for a request with other filters")
    return position
