"""Eval sets and their items in the database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from tunix_rt.common.errors import AlreadyExists, FailedPrecondition
from tunix_rt.registry import eval_sets as es
from tunix_rt.registry.storage.base import RepositoryBase, one_or_not_found, utc
from tunix_rt.registry.storage.schema import EvalSetItemRow, EvalSetRow, EvaluationRow

INSERT_BATCH = 1000


def eval_set_row(session: Session, eval_set_id: str) -> EvalSetRow:
    query = select(EvalSetRow).where(EvalSetRow.eval_set_id == eval_set_id)
    return one_or_not_found(session, query, "eval set", f"evalSets/{eval_set_id}")


def _from_row(row: EvalSetRow) -> es.EvalSet:
    return es.EvalSet(
        eval_set_id=row.eval_set_id,
        description=row.description,
        item_count=row.item_count,
        counts=dict(row.counts),
        content_hash=row.content_hash,
        create_time=utc(row.create_time),
    )


class EvalSetRepository(RepositoryBase):
    """Stores eval sets."""

    def insert_eval_set(
        self, session: Session, eval_set: es.EvalSet, items: Sequence[es.EvalSetItem]
    ) -> None:
        """Stores an eval set and its items in the caller's transaction."""
        taken = session.scalar(
            select(func.count())
            .select_from(EvalSetRow)
            .where(EvalSetRow.eval_set_id == eval_set.eval_set_id)
        )
        if taken:
            raise AlreadyExists("eval set", f"evalSets/{eval_set.eval_set_id}")
        row = EvalSetRow(
            eval_set_id=eval_set.eval_set_id,
            description=eval_set.description,
            item_count=eval_set.item_count,
            counts=eval_set.counts,
            content_hash=eval_set.content_hash,
            create_time=eval_set.create_time,
        )
        session.add(row)
        session.flush()
        rows = [
            {
                "eval_set_id": row.id,
                "position": n,
                "item_id": item.item_id,
                "prompt": item.prompt,
                "expected_answer": item.expected_answer,
                "meta": item.meta,
            }
            for n, item in enumerate(items)
        ]
        for start in range(0, len(rows), INSERT_BATCH):
            session.execute(insert(EvalSetItemRow), rows[start : start + INSERT_BATCH])

    def get_eval_set(self, eval_set_id: str) -> es.EvalSet:
        with self.reading() as session:
            return _from_row(eval_set_row(session, eval_set_id))

    def list_eval_sets(
        self, before_id: int | None, limit: int
    ) -> tuple[list[es.EvalSet], int | None]:
        with self.reading() as session:
            query = select(EvalSetRow)
            if before_id is not None:
                query = query.where(EvalSetRow.id < before_id)
            rows = list(session.scalars(query.order_by(EvalSetRow.id.desc()).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return [_from_row(r) for r in rows], (rows[-1].id if more else None)

    def list_eval_set_items(
        self, eval_set_id: str, after: int, limit: int
    ) -> tuple[list[es.EvalSetItem], int | None]:
        with self.reading() as session:
            pk = eval_set_row(session, eval_set_id).id
            rows = list(
                session.scalars(
                    select(EvalSetItemRow)
                    .where(EvalSetItemRow.eval_set_id == pk, EvalSetItemRow.position > after)
                    .order_by(EvalSetItemRow.position)
                    .limit(limit + 1)
                )
            )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [es.EvalSetItem(r.item_id, r.prompt, r.expected_answer, dict(r.meta)) for r in rows]
        return items, (rows[-1].position if more else None)

    def delete_eval_set(self, eval_set_id: str) -> None:
        with self.writing() as session:
            row = eval_set_row(session, eval_set_id)
            evaluated = session.scalar(
                select(func.count())
                .select_from(EvaluationRow)
                .where(EvaluationRow.eval_set_id == row.id)
            )
            if evaluated:
                raise FailedPrecondition(
                    f"eval set has {evaluated} evaluation(s) that refer to it",
                    reason="EVAL_SET_HAS_EVALUATIONS",
                )
            session.execute(delete(EvalSetItemRow).where(EvalSetItemRow.eval_set_id == row.id))
            session.delete(row)
