"""An index on `traces (source, content_hash)`: an import stores only the traces its source lacks.

Importing a file again (the natural retry after a dropped connection) stored every trace again
(issue 10, finding 2). An import now looks up, batch by batch, which of its traces' content hashes
the source already holds, and stores the others; this index makes that lookup one index probe per
trace instead of a scan of the source.

Not a unique index: CreateTrace and BatchCreateTraces still store what they are given, the same
content twice included, and databases written before this revision may already hold copies (an
import then names the oldest). Imports into one source are serialized instead (see
TraceRepository.insert_new_traces).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.create_index("ix_traces_source_content_hash", ["source", "content_hash"])


def downgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_index("ix_traces_source_content_hash")
