"""Database engines and schema migration for the registry.

SQLite (the embedded default) runs in WAL mode so readers never block the writer, with a busy
timeout, and write transactions start with `BEGIN IMMEDIATE`: a deferred transaction that later
tries to write can fail at once with SQLITE_BUSY instead of waiting, which `IMMEDIATE` avoids.
PostgreSQL needs none of this; its sessions read times in UTC whatever the server's zone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS_DIR = Path(__file__).resolve().parents[4] / "migrations"


def default_sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'registry.sqlite3').resolve()}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, write: bool = False) -> Engine:
    """An engine for `url`; with `write` on SQLite its transactions begin IMMEDIATE."""
    if not is_sqlite(url):
        engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        event.listen(engine, "connect", _utc_session)
        return engine
    # Writers: isolation_level=None hands transaction control to us (the pysqlite recipe in
    # SQLAlchemy's docs), so the `begin` hook below starts each one IMMEDIATE. Readers keep
    # pysqlite's default, which runs a lone SELECT without BEGIN/COMMIT round trips; WAL gives each
    # statement a consistent snapshot.
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
    if write:
        connect_args["isolation_level"] = None
    engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    if write:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _utc_session(dbapi_conn: Any, _record: Any) -> None:
    """PostgreSQL hands timestamptz values back in the session's time zone, the server's
    default unless set: in a zone west of UTC, 0001-01-01T00:00Z reads as a year 1 BC that no
    Python datetime holds (psycopg raises DataError), and east of UTC the last second of 9999
    reads as year 10000. Every stored time is UTC, so every session reads in UTC. A SET in the
    connect hook rather than the `options` startup parameter, which PgBouncer refuses."""
    cursor = dbapi_conn.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_conn.commit()  # outside autocommit the SET opened a transaction; keep it


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrates the database at `url` to `revision` (creating it when new)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
