"""Registered models, versions and aliases; parsing of model references, as plain Python."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.registry.blob_store import BlobStore
from tunix_rt.registry.names import ID_PATTERN, MAX_VERSION, parse_model_version

# Aliases start with a letter, so `name@3` can never be confused with a version number.
ALIAS_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
# `name@latest` always means the newest version; it cannot be set by hand.
LATEST = "latest"


@dataclass(frozen=True)
class Model:
    """A stored registered model."""

    model_id: str
    description: str
    labels: dict[str, str]
    aliases: dict[str, int]
    latest_version: int
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class ModelVersion:
    """A stored model version."""

    model_id: str
    version: int
    artifact_sha256: str
    source_run: str
    metrics: dict[str, float]
    provenance: dict[str, Any]
    description: str
    aliases: tuple[str, ...]
    create_time: datetime


@dataclass(frozen=True)
class Reference:
    """A parsed model reference: exactly one of `alias` or `version` is set, or neither (latest)."""

    model_id: str
    alias: str | None = None
    version: int | None = None


def check_alias(alias: str, field: str = "alias") -> str:
    if not ALIAS_PATTERN.match(alias):
        raise InvalidArgument.field(
            field, "must be 1-64 chars of letters, digits, '-' or '_', starting with a letter"
        )
    if alias == LATEST:
        raise InvalidArgument.field(field, "'latest' is reserved: it always means the newest one")
    return alias


def parse_reference(reference: str, field: str = "reference") -> Reference:
    """Parses `name@alias`, `name/version`, `name`, `models/name...` or a full version name."""
    text = reference.strip()
    if text.startswith("models/") and "/versions/" in text:
        model_id, version = parse_model_version(text, field)
        return Reference(model_id, version=version)
    text = text.removeprefix("models/")
    if "@" in text:
        model_id, alias = text.split("@", 1)
        if not ID_PATTERN.match(model_id) or not (alias == LATEST or ALIAS_PATTERN.match(alias)):
            raise InvalidArgument.field(field, f"{reference!r} is not 'name@alias'")
        return Reference(model_id, alias=None if alias == LATEST else alias)
    if "/" in text:
        model_id, _, version_text = text.partition("/")
        if (
            not ID_PATTERN.match(model_id)
            or not (version_text.isascii() and version_text.isdigit())
            or not 1 <= int(version_text) <= MAX_VERSION
        ):
            raise InvalidArgument.field(field, f"{reference!r} is not 'name/version'")
        return Reference(model_id, version=int(version_text))
    if not ID_PATTERN.match(text):
        raise InvalidArgument.field(
            field, f"{reference!r} is not 'name', 'name@alias' or 'name/version'"
        )
    return Reference(text)


# Model versions whose artifact has this content type are tars of a model directory (what the
# training worker and `tunix-rt models import` upload); other artifacts are taken as they are.
MODEL_DIR_CONTENT_TYPE = "application/x-tar"


def check_model_artifact(
    blobs: BlobStore, sha256: str, content_type: str | None, field: str = "model_version.artifact"
) -> None:
    """InvalidArgument naming what is wrong when a model-directory artifact (a tar, by content
    type) is not a complete, consistent model directory: missing files, unknown architecture,
    missing/unexpected tensors, wrong shapes or dtypes. Reads the config and the safetensors
    headers only. An artifact whose blob is absent is left to the caller's NotFound."""
    from tunix_rt.models.interchange.validate import validate_tar

    if content_type != MODEL_DIR_CONTENT_TYPE:
        return
    path = blobs.path_for(sha256)
    if not path.is_file():
        return
    with open(path, "rb") as handle:
        validate_tar(handle, field)
