"""The public API of the client distribution is exactly `tunix_rt.client.__all__`: a name added or
removed there is a decision, made here too."""

from __future__ import annotations

import importlib

import pytest

import tunix_rt.client

PUBLIC_API = [
    "ChannelSettings",
    "InferenceClient",
    "IntegrityError",
    "RegistryClient",
    "RetryPolicy",
    "TrainingClient",
    "build_aio_channel",
    "build_channel",
    "describe_rpc_error",
    "field_violations",
]


def test_all_is_the_pinned_sorted_list() -> None:
    assert tunix_rt.client.__all__ == PUBLIC_API
    assert sorted(PUBLIC_API) == PUBLIC_API


@pytest.mark.parametrize("name", PUBLIC_API)
def test_each_name_is_importable_and_documented(name: str) -> None:
    # A fresh `from tunix_rt.client import NAME`, as users write it.
    value = getattr(importlib.import_module("tunix_rt.client"), name)
    assert value.__module__.startswith("tunix_rt.client.")
    assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    # The package docstring says what each public name is for.
    assert f"`{name}`" in (tunix_rt.client.__doc__ or "")


def test_star_import_gives_exactly_the_public_api() -> None:
    namespace: dict[str, object] = {}
    exec("from tunix_rt.client import *", namespace)
    assert sorted(k for k in namespace if not k.startswith("__")) == PUBLIC_API
