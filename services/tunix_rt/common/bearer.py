"""The bearer-token check shared by the gRPC `AuthInterceptor` and the metrics HTTP endpoint:
both read `Authorization: Bearer <token>` the same way and compare it in constant time."""

from __future__ import annotations

import hashlib
import hmac


class BearerToken:
    """The one token a server accepts; `problem` says why a header value does not carry it."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must not be empty")
        # Digests have one length, so compare_digest's time says nothing about the token's length.
        self._digest = hashlib.sha256(token.encode()).digest()

    def problem(self, header: str | None) -> str | None:
        """Why `header` (the authorization value, None when absent) is refused, or None."""
        if header is None:
            return "missing bearer token (authorization metadata)"
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return "authorization metadata must be 'Bearer <token>'"
        digest = hashlib.sha256(credentials.strip().encode()).digest()
        if not hmac.compare_digest(digest, self._digest):
            return "invalid bearer token"
        return None
