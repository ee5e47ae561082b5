"""Artifacts: content-addressed blobs and their metadata, as plain Python.

An artifact is named by the sha256 of its bytes (`artifacts/{sha256}`), so the same bytes are
stored once. Uploads and downloads stream in chunks of at most `MAX_CHUNK` bytes; the use cases
(`use_cases/artifacts.py`) verify an upload against what its header claims before storing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from tunix_rt.common.errors import InvalidArgument, ResourceExhausted
from tunix_rt.registry import names
from tunix_rt.registry.blob_store import check_digest

# Bytes per upload or download message: the most a client may send or ask for, and the default.
MAX_CHUNK = 4 << 20
DEFAULT_CHUNK = 1 << 20
# The largest artifact an upload may store, unless the server is configured otherwise
# (`max_artifact_bytes`; `registry.server` reads TUNIX_RT_MAX_ARTIFACT_BYTES). 4 GiB holds the
# checkpoints of models far larger than the presets (a 1B-parameter model in bf16 is ~2 GiB) and
# bounds the disk one upload can fill.
DEFAULT_MAX_ARTIFACT_BYTES = 4 << 30
# The artifacts.content_type column is VARCHAR(128).
MAX_CONTENT_TYPE = 128
# Artifact names carry a digest; check_digest gives the precise error, so the name parse accepts
# any id.
_ANY_ID = re.compile(r"^.+$")


@dataclass(frozen=True)
class Artifact:
    """A stored artifact's metadata."""

    sha256: str
    size_bytes: int
    content_type: str
    create_time: datetime


@dataclass(frozen=True)
class UploadHeader:
    """What an upload claims before its bytes arrive; empty (zero) fields claim nothing."""

    sha256: str = ""
    size_bytes: int = 0
    content_type: str = ""


def parse_name(name: str, field: str) -> str:
    """The sha256 of `artifacts/{sha256}` (or a bare digest)."""
    return check_digest(names.parse(name, "artifacts", field, _ANY_ID), field)


def check_header(header: UploadHeader) -> None:
    if header.sha256:
        check_digest(header.sha256, "header.sha256")
    if len(header.content_type) > MAX_CONTENT_TYPE or "\x00" in header.content_type:
        raise InvalidArgument.field(
            "header.content_type", f"needs at most {MAX_CONTENT_TYPE} chars, no NUL"
        )
    if header.size_bytes < 0:
        raise InvalidArgument.field("header.size_bytes", "must not be negative")


def check_size(size: int, limit: int) -> None:
    """An upload of `size` bytes (claimed by its header, or received so far) must fit the limit.

    RESOURCE_EXHAUSTED, as the house maps every size limit (common/errors.py): the request is
    well formed, it asks for more of the store than this server grants; ErrorInfo carries the
    limit so a client can say which setting to change."""
    if size > limit:
        raise ResourceExhausted(
            f"artifact exceeds the registry's limit of {limit} bytes (max_artifact_bytes, "
            "TUNIX_RT_MAX_ARTIFACT_BYTES)",
            reason="ARTIFACT_TOO_LARGE",
            metadata={"limit_bytes": str(limit)},
        )


def check_chunk(chunk: bytes) -> None:
    if len(chunk) > MAX_CHUNK:
        raise InvalidArgument.field("chunk", "must be at most 4 MiB")


def check_content(header: UploadHeader, sha256: str, size: int) -> None:
    """The received bytes (`sha256`, `size`) must be what the header claimed."""
    if header.sha256 and header.sha256 != sha256:
        raise InvalidArgument.field(
            "header.sha256", f"does not match the content (got sha256 {sha256})"
        )
    if header.size_bytes and header.size_bytes != size:
        raise InvalidArgument.field(
            "header.size_bytes", f"is {header.size_bytes}, content is {size} bytes"
        )


def check_range(artifact: Artifact, offset: int, chunk_size: int) -> None:
    """A download starts within the content and reads chunks of at most MAX_CHUNK (0: default)."""
    if not 0 <= offset <= artifact.size_bytes:
        raise InvalidArgument.field("offset", f"must be within [0, {artifact.size_bytes}]")
    if not 0 <= chunk_size <= MAX_CHUNK:
        raise InvalidArgument.field("chunk_size", "must be at most 4 MiB")
