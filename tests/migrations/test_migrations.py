"""The Alembic migrations upgrade and downgrade cleanly and match the models, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support import postgres_database
from tunix_rt.registry.storage.engine import downgrade, upgrade
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"


def _insert_key(url: str, request_id: str, resource: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO idempotency_keys (method, request_id, fingerprint, resource,"
                    " create_time) VALUES ('CreateTraces', :r, :f, :res, :t)"
                ),
                {"r": request_id, "f": "0" * 64, "res": resource, "t": datetime.now(UTC)},
            )
    finally:
        engine.dispose()


def _resources(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT request_id, resource FROM idempotency_keys"))
            return {str(r): str(res) for r, res in rows}
    finally:
        engine.dispose()


def test_idempotency_records_of_any_length_survive_0003(database_url: str) -> None:
    # Issue 10, finding 1: a batch's record lists every trace uid; VARCHAR(256) held 7 of them.
    uids = ",".join(f"{n:032x}" for n in range(10_000))
    upgrade(database_url, "0002")
    _insert_key(database_url, "short", "a" * 256)
    upgrade(database_url)
    _insert_key(database_url, "long", uids)
    assert _resources(database_url) == {"short": "a" * 256, "long": uids}
    # Going back keeps what fits the old column and forgets only the records that cannot.
    downgrade(database_url, "0002")
    assert _resources(database_url) == {"short": "a" * 256}
    upgrade(database_url)
    assert not schema_drift(database_url)
