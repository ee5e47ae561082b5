"""Alembic environment of the registry database; configured by tunix_rt.registry.storage.engine.

Run by hand: `.venv/bin/alembic -x url=sqlite:///data/registry.sqlite3 upgrade head` is not needed;
the registry migrates itself at start, and `scripts/check_migrations.py` tests both directions.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from tunix_rt.registry.storage.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    with engine.connect() as connection:
        # Batch mode lets ALTERs work on SQLite (it recreates the table) and is a no-op elsewhere.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
