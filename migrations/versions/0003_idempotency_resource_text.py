"""Idempotency records hold resource lists of any length: `idempotency_keys.resource` becomes TEXT.

A BatchCreateTraces or ImportTraces with a `request_id` records the comma-joined uids of every
trace it stored (33 chars each, up to 10,000 of them), so VARCHAR(256) held at most 7: PostgreSQL
refused the 8th with StringDataRightTruncation (INTERNAL); SQLite does not enforce lengths, which
is why only PostgreSQL failed (issue 10, finding 1).

TEXT rather than a side table of (request, position, uid): the record is written once, read back
whole and never queried by its parts, so one column holding the list is the simplest correct
design, the same on both dialects (PostgreSQL TEXT has no length limit; SQLite has one type).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The column's width before this revision.
OLD_LENGTH = 256


def upgrade() -> None:
    # Widening VARCHAR to TEXT keeps every value; on PostgreSQL it rewrites no rows, on SQLite
    # batch mode copies the table.
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.alter_column(
            "resource", existing_type=sa.String(length=OLD_LENGTH), type_=sa.Text()
        )


def downgrade() -> None:
    # Records too long for the old column cannot go back into it; dropping them only forgets
    # those request ids (a retry of such a batch would store it again), it loses no resource.
    op.execute(f"DELETE FROM idempotency_keys WHERE LENGTH(resource) > {OLD_LENGTH}")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.alter_column(
            "resource", existing_type=sa.Text(), type_=sa.String(length=OLD_LENGTH)
        )
