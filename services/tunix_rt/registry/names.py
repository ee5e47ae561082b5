"""Resource names and ids of the registry (`traces/{trace}`, `models/{model}/versions/{v}` ...)."""

from __future__ import annotations

import re

from tunix_rt.common.errors import InvalidArgument

# User-chosen ids: letters, digits, `-`, `_`, `.`; no leading punctuation, so ids never look like
# paths (`..`) or flags (`-x`).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Server-generated ids are 32 lowercase hex chars (uuid4).
UID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def check_id(value: str, field: str) -> str:
    """Returns a valid user-chosen id or raises InvalidArgument naming `field`."""
    if not ID_PATTERN.match(value):
        raise InvalidArgument.field(
            field,
            "must be 1-128 chars of letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit (got {value!r})",
        )
    return value


def parse(name: str, collection: str, field: str, pattern: re.Pattern[str] = ID_PATTERN) -> str:
    """Parses `{collection}/{id}` (or a bare id) and returns the id."""
    prefix = collection + "/"
    ident = name[len(prefix) :] if name.startswith(prefix) else name
    if not ident or not pattern.match(ident):
        raise InvalidArgument.field(field, f"must be a {collection} name '{prefix}{{id}}'")
    return ident


def trace_name(uid: str) -> str:
    return f"traces/{uid}"


def dataset_name(dataset_id: str) -> str:
    return f"datasets/{dataset_id}"


def run_name(run_id: str) -> str:
    return f"runs/{run_id}"


def model_name(model_id: str) -> str:
    return f"models/{model_id}"


def model_version_name(model_id: str, version: int) -> str:
    return f"models/{model_id}/versions/{version}"


def artifact_name(sha256: str) -> str:
    return f"artifacts/{sha256}"


def evaluation_name(uid: str) -> str:
    return f"evaluations/{uid}"


def checkpoint_name(run_id: str, step: int) -> str:
    return f"runs/{run_id}/checkpoints/{step}"


def eval_set_name(eval_set_id: str) -> str:
    return f"evalSets/{eval_set_id}"


def parse_eval_set(name: str, field: str) -> str:
    """Parses `evalSets/{eval_set}`; unlike other names, a bare id is refused, because where an
    eval set or a dataset may be named, the prefix is what tells them apart."""
    if not name.startswith("evalSets/"):
        raise InvalidArgument.field(field, "must be an eval set name 'evalSets/{eval_set}'")
    return parse(name, "evalSets", field)


_VERSION_NAME = re.compile(r"^models/([^/]+)/versions/([0-9]+)$")
# Version numbers are stored as INTEGER (int32): larger numbers cannot name a version.
MAX_VERSION = 2**31 - 1


def parse_model_version(name: str, field: str) -> tuple[str, int]:
    """Parses `models/{model}/versions/{version}` into (model id, version)."""
    match = _VERSION_NAME.match(name)
    if (
        not match
        or not ID_PATTERN.match(match.group(1))
        or not 1 <= int(match.group(2)) <= MAX_VERSION
    ):
        raise InvalidArgument.field(field, "must be 'models/{model}/versions/{version}'")
    return match.group(1), int(match.group(2))
