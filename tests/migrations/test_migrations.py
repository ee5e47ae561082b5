"""The Alembic migrations upgrade and downgrade cleanly and match the models, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import postgres_database
from tunix_rt.registry.storage.engine import downgrade
from tunix_rt.registry.storage.migration_check import check_round_trip, schema_drift


def test_sqlite_round_trip(tmp_path: Path) -> None:
    check_round_trip(f"sqlite:///{tmp_path / 'db.sqlite3'}")


@pytest.mark.postgres
def test_postgres_round_trip() -> None:
    with postgres_database() as url:
        check_round_trip(url)


def test_drift_is_detected(tmp_path: Path) -> None:
    # The check must be able to fail: a database at base has every model table missing.
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    check_round_trip(url)
    downgrade(url, "base")
    assert schema_drift(url)
