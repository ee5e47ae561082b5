"""Evaluations, their metrics and items, and the leaderboards ranked from them, in the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tunix_rt.registry import evaluations as ev
from tunix_rt.registry.storage.base import RepositoryBase, new_uid, now, one_or_not_found, utc
from tunix_rt.registry.storage.dataset_repository import dataset_row
from tunix_rt.registry.storage.eval_set_repository import eval_set_row
from tunix_rt.registry.storage.model_repository import model_row, version_row
from tunix_rt.registry.storage.schema import (
    DatasetRow,
    EvalSetRow,
    EvaluationItemRow,
    EvaluationMetricRow,
    EvaluationRow,
    ModelRow,
    ModelVersionRow,
)


class EvaluationRepository(RepositoryBase):
    """Stores evaluations and reads leaderboards."""

    def insert_evaluation(
        self,
        session: Session,
        model_id: str,
        version: int,
        dataset_id: str,
        split: int,
        metrics: dict[str, float],
        config: dict[str, Any],
        items: Sequence[tuple[str, dict[str, Any]]],
    ) -> str:
        model = model_row(session, model_id)
        evaluated = version_row(session, model, version)
        row = EvaluationRow(
            uid=new_uid(),
            model_version_id=evaluated.id,
            **_source_columns(session, dataset_id),
            split=split,
            metrics=metrics,
            config=config,
            item_count=len(items),
            create_time=now(),
        )
        session.add(row)
        session.flush()
        session.add_all(
            EvaluationMetricRow(evaluation_id=row.id, key=k, value=v) for k, v in metrics.items()
        )
        if items:
            session.execute(
                insert(EvaluationItemRow),
                [
                    {"evaluation_id": row.id, "position": n, "item_id": item_id, "data": data}
                    for n, (item_id, data) in enumerate(items)
                ],
            )
        return row.uid

    def _evaluation(self, session: Session, row: EvaluationRow) -> ev.Evaluation:
        version = session.get(ModelVersionRow, row.model_version_id)
        assert version is not None
        model = session.get(ModelRow, version.model_id)
        assert model is not None
        if row.eval_set_id is not None:
            eval_set = session.get(EvalSetRow, row.eval_set_id)
            assert eval_set is not None
            source = ev.eval_set_source(eval_set.eval_set_id)
        else:
            dataset = session.get(DatasetRow, row.dataset_id)
            assert dataset is not None
            source = dataset.dataset_id
        return ev.Evaluation(
            uid=row.uid,
            model_id=model.model_id,
            version=version.version,
            dataset_id=source,
            split=row.split,
            metrics=row.metrics,
            config=row.config,
            item_count=row.item_count,
            create_time=utc(row.create_time),
        )

    def _evaluation_row(self, session: Session, uid: str) -> EvaluationRow:
        query = select(EvaluationRow).where(EvaluationRow.uid == uid)
        return one_or_not_found(session, query, "evaluation", f"evaluations/{uid}")

    def get_evaluation(self, uid: str) -> ev.Evaluation:
        with self.reading() as session:
            return self._evaluation(session, self._evaluation_row(session, uid))

    def list_evaluations(
        self,
        model_id: str,
        version: int | None,
        dataset_id: str,
        before_id: int | None,
        limit: int,
    ) -> tuple[list[ev.Evaluation], int | None]:
        with self.reading() as session:
            query = select(EvaluationRow)
            if model_id:
                model = model_row(session, model_id)
                query = query.join(
                    ModelVersionRow, ModelVersionRow.id == EvaluationRow.model_version_id
                ).where(ModelVersionRow.model_id == model.id)
                if version is not None:
                    query = query.where(ModelVersionRow.version == version)
            if dataset_id:
                query = query.where(*_source_filter(session, dataset_id))
            if before_id is not None:
                query = query.where(EvaluationRow.id < before_id)
            rows = list(session.scalars(query.order_by(EvaluationRow.id.desc()).limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
            return [self._evaluation(session, r) for r in rows], (rows[-1].id if more else None)

    def list_evaluation_items(
        self, uid: str, after: int, limit: int
    ) -> tuple[list[tuple[str, dict[str, Any]]], int | None]:
        with self.reading() as session:
            row = self._evaluation_row(session, uid)
            items = list(
                session.scalars(
                    select(EvaluationItemRow)
                    .where(
                        EvaluationItemRow.evaluation_id == row.id,
                        EvaluationItemRow.position > after,
                    )
                    .order_by(EvaluationItemRow.position)
                    .limit(limit + 1)
                )
            )
        more = len(items) > limit
        items = items[:limit]
        return [(i.item_id, i.data) for i in items], (items[-1].position if more else None)

    def leaderboard_rows(self, dataset_id: str, metric: str, split: int) -> list[ev.LeaderboardRow]:
        with self.reading() as session:
            where = _source_filter(session, dataset_id)
            query = (
                select(
                    ModelRow.model_id,
                    ModelVersionRow.version,
                    EvaluationRow.uid,
                    EvaluationMetricRow.value,
                    EvaluationRow.create_time,
                )
                .join(EvaluationRow, EvaluationRow.id == EvaluationMetricRow.evaluation_id)
                .join(ModelVersionRow, ModelVersionRow.id == EvaluationRow.model_version_id)
                .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
                .where(*where, EvaluationMetricRow.key == metric)
            )
            if split:
                query = query.where(EvaluationRow.split == split)
            return [
                ev.LeaderboardRow(m, v, u, value, utc(t))
                for m, v, u, value, t in session.execute(query)
            ]


def _source_columns(session: Session, source: str) -> dict[str, int | None]:
    """The evaluations columns naming what was evaluated on: a dataset id or `evalSets/{id}`."""
    eval_set_id = ev.parse_eval_set_source(source)
    if eval_set_id:
        return {"dataset_id": None, "eval_set_id": eval_set_row(session, eval_set_id).id}
    return {"dataset_id": dataset_row(session, source).id, "eval_set_id": None}


def _source_filter(session: Session, source: str) -> list[Any]:
    columns = _source_columns(session, source)
    if columns["eval_set_id"] is not None:
        return [EvaluationRow.eval_set_id == columns["eval_set_id"]]
    return [EvaluationRow.dataset_id == columns["dataset_id"]]
