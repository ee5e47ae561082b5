"""Checks that the Alembic migrations upgrade, downgrade and upgrade again cleanly, and that the
upgraded schema matches the SQLAlchemy models exactly (no drift between the two)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from tunix_rt.registry.storage.engine import downgrade, upgrade
from tunix_rt.registry.storage.schema import Base


def schema_drift(url: str) -> list[Any]:
    """Differences between the database at `url` and the models (empty when they agree)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def check_round_trip(url: str) -> None:
    """upgrade → no drift → downgrade to base (no tables left) → upgrade again; raises on error."""
    upgrade(url)
    drift = schema_drift(url)
    if drift:
        raise AssertionError(f"schema differs from the models after upgrade: {drift}")
    downgrade(url, "base")
    left = table_names(url)
    if left:
        raise AssertionError(f"tables left after downgrade to base: {sorted(left)}")
    upgrade(url)
    if schema_drift(url):
        raise AssertionError("schema differs from the models after the second upgrade")
