"""Eval sets, and evaluations on an eval set instead of a dataset.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 11:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_sets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("eval_set_id", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_sets")),
        sa.UniqueConstraint("eval_set_id", name=op.f("uq_eval_sets_eval_set_id")),
    )
    op.create_table(
        "eval_set_items",
        sa.Column("eval_set_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=256), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("expected_answer", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_set_id"],
            ["eval_sets.id"],
            name=op.f("fk_eval_set_items_eval_set_id_eval_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("eval_set_id", "position", name=op.f("pk_eval_set_items")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("eval_set_id", sa.Integer(), nullable=True))
        batch_op.alter_column("dataset_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f("ix_evaluations_eval_set_id"), ["eval_set_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_evaluations_eval_set_id_eval_sets"), "eval_sets", ["eval_set_id"], ["id"]
        )


def downgrade() -> None:
    # Evaluations on eval sets have no dataset to keep them under the old schema.
    op.execute(
        "DELETE FROM evaluation_items WHERE evaluation_id IN "
        "(SELECT id FROM evaluations WHERE eval_set_id IS NOT NULL)"
    )
    op.execute(
        "DELETE FROM evaluation_metrics WHERE evaluation_id IN "
        "(SELECT id FROM evaluations WHERE eval_set_id IS NOT NULL)"
    )
    op.execute("DELETE FROM evaluations WHERE eval_set_id IS NOT NULL")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_evaluations_eval_set_id_eval_sets"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_evaluations_eval_set_id"))
        batch_op.alter_column("dataset_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("eval_set_id")
    op.drop_table("eval_set_items")
    op.drop_table("eval_sets")
