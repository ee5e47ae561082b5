"""Resource names as users type them: `my-ds` or `datasets/my-ds` both mean the same dataset.

The API always takes full names (`datasets/{dataset}`); people mostly type ids. These functions add
the collection prefix when it is missing and leave full names alone, so both forms work everywhere.
"""

from __future__ import annotations

import re

_VERSION_REF = re.compile(r"^(?:models/)?([^/@]+)(?:/versions)?/([0-9]+)$")


def full_name(collection: str, name_or_id: str) -> str:
    """`name_or_id` as `{collection}/{id}`; a name that already has the prefix is returned as is."""
    value = name_or_id.strip()
    prefix = collection + "/"
    if value.startswith(prefix):
        return value
    if not value:
        raise ValueError(f"an empty {collection} name")
    return prefix + value


def short_id(name: str) -> str:
    """The last segment of a name: `datasets/my-ds` -> `my-ds`, for compact tables."""
    return name.rsplit("/", 1)[-1]


def trace(name: str) -> str:
    return full_name("traces", name)


def dataset(name: str) -> str:
    return full_name("datasets", name)


def run(name: str) -> str:
    return full_name("runs", name)


def model(name: str) -> str:
    return full_name("models", name)


def artifact(name: str) -> str:
    """`artifacts/{sha256}`; a `sha256:` prefix, as printed by many tools, is dropped."""
    return full_name("artifacts", name.strip().removeprefix("sha256:"))


def evaluation(name: str) -> str:
    return full_name("evaluations", name)


def model_version(reference: str) -> str | None:
    """`models/m/versions/3` for `m/3`, `models/m/3` or `models/m/versions/3`; None for references
    that need the server to resolve them (`m@alias`, `m` for the latest version)."""
    match = _VERSION_REF.match(reference.strip())
    return f"models/{match.group(1)}/versions/{match.group(2)}" if match else None
