"""Resource names: ids and full names are both accepted."""

from __future__ import annotations

import pytest

from tunix_rt.client import names


def test_ids_get_their_collection_and_full_names_stay() -> None:
    assert names.dataset("my-ds") == names.dataset("datasets/my-ds") == "datasets/my-ds"
    assert names.trace("0f" * 16) == "traces/" + "0f" * 16
    assert names.model(" m ") == "models/m"
    assert names.artifact("sha256:abc") == names.artifact("artifacts/abc") == "artifacts/abc"
    assert names.short_id("models/m/versions/3") == "3"
    with pytest.raises(ValueError, match="empty"):
        names.dataset("")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("m/3", "models/m/versions/3"),
        ("models/m/3", "models/m/versions/3"),
        ("models/m/versions/3", "models/m/versions/3"),
        ("m@production", None),
        ("m", None),
    ],
)
def test_version_references(reference: str, expected: str | None) -> None:
    assert names.model_version(reference) == expected
