"""Runs the registry migrations up, down and up again on SQLite and, when
TUNIX_RT_TEST_POSTGRES_URL is set, on PostgreSQL; fails on any error or schema drift.

Run: `.venv/bin/python scripts/check_migrations.py` (scripts/check.sh runs it inside
scripts/with_postgres.sh so both databases are checked).
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tunix_rt.registry.storage.migration_check import check_round_trip


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'migrations.sqlite3'}"
        check_round_trip(url)
        print("migrations: sqlite ok")
    base = os.environ.get("TUNIX_RT_TEST_POSTGRES_URL")
    if not base:
        print("migrations: postgres skipped (TUNIX_RT_TEST_POSTGRES_URL unset)")
        return 0
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        check_round_trip(make_url(base).set(database=name).render_as_string(hide_password=False))
        print("migrations: postgres ok")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
