"""Models, versions, aliases, artifacts and evaluations in the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tunix_rt.common.errors import AlreadyExists, NotFound
from tunix_rt.registry import evaluations as ev
from tunix_rt.registry import models as md
from tunix_rt.registry.storage.base import (
    RepositoryBase,
    dataset_row,
    new_uid,
    now,
    one_or_not_found,
    utc,
)
from tunix_rt.registry.storage.eval_set_repository import eval_set_row
from tunix_rt.registry.storage.schema import (
    ArtifactRow,
    DatasetRow,
    EvalSetRow,
    EvaluationItemRow,
    EvaluationMetricRow,
    EvaluationRow,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
)


class ModelRepository(RepositoryBase):
    """Stores models, artifacts and evaluations."""

    # Models.

    @staticmethod
    def _model_row(session: Session, model_id: str, *, lock: bool = False) -> ModelRow:
        query = select(ModelRow).where(ModelRow.model_id == model_id)
        if lock:
            query = query.with_for_update()
        return one_or_not_found(session, query, "model", f"models/{model_id}")

    @staticmethod
    def _aliases(session: Session, model_pk: int) -> dict[str, int]:
        pairs = session.execute(
            select(ModelAliasRow.alias, ModelVersionRow.version)
            .join(ModelVersionRow, ModelVersionRow.id == ModelAliasRow.version_id)
            .where(ModelAliasRow.model_id == model_pk)
            .order_by(ModelAliasRow.alias)
        )
        return {alias: version for alias, version in pairs}

    def _model(self, session: Session, row: ModelRow) -> md.Model:
        return md.Model(
            model_id=row.model_id,
            description=row.description,
            labels=row.labels,
            aliases=self._aliases(session, row.id),
            latest_version=row.latest_version,
            create_time=utc(row.create_time),
            update_time=utc(row.update_time),
        )

    def _version(self, session: Session, model_id: str, row: ModelVersionRow) -> md.ModelVersion:
        aliases = session.scalars(
            select(ModelAliasRow.alias)
            .where(ModelAliasRow.version_id == row.id)
            .order_by(ModelAliasRow.alias)
        ).all()
        return md.ModelVersion(
            model_id=model_id,
            version=row.version,
            artifact_sha256=row.artifact_sha256,
            source_run=row.source_run,
            metrics=row.metrics,
            provenance=row.provenance,
            description=row.description,
            aliases=tuple(aliases),
            create_time=utc(row.create_time),
        )

    def insert_model(
        self, session: Session, model_id: str, description: str, labels: dict[str, str]
    ) -> ModelRow:
        if session.scalars(select(ModelRow.id).where(ModelRow.model_id == model_id)).first():
            raise AlreadyExists("model", f"models/{model_id}")
        return self._insert_model_row(session, model_id, description, labels)

    @staticmethod
    def _insert_model_row(
        session: Session, model_id: str, description: str, labels: dict[str, str]
    ) -> ModelRow:
        stamp = now()
        row = ModelRow(
            model_id=model_id,
            description=description,
            labels=labels,
            latest_version=0,
            create_time=stamp,
            update_time=stamp,
        )
        session.add(row)
        session.flush()
        return row

    def get_model(self, model_id: str) -> md.Model:
        with self.reading() as session:
            return self._model(session, self._model_row(session, model_id))

    def list_models(self, after: str, limit: int) -> tuple[list[md.Model], str | None]:
        with self.reading() as session:
            rows = list(
                session.scalars(
                    select(ModelRow)
                    .where(ModelRow.model_id > after)
                    .order_by(ModelRow.model_id)
                    .limit(limit + 1)
                )
            )
            more = len(rows) > limit
            rows = rows[:limit]
            return [self._model(session, r) for r in rows], (rows[-1].model_id if more else None)

    def insert_version(
        self,
        session: Session,
        model_id: str,
        version: md.ModelVersion,
        aliases: Sequence[str],
    ) -> int:
        """Adds the next version (creating the model if needed); returns its number."""
        model = session.scalars(
            select(ModelRow).where(ModelRow.model_id == model_id).with_for_update()
        ).one_or_none()
        if model is None:
            # A concurrent first version may create it meanwhile: its insert then fails on the
            # unique model_id and write_retrying runs this again, finding (and locking) it.
            model = self._insert_model_row(session, model_id, "", {})
        if session.get(ArtifactRow, version.artifact_sha256) is None:
            raise NotFound("artifact", f"artifacts/{version.artifact_sha256}")
        number = model.latest_version + 1
        row = ModelVersionRow(
            model_id=model.id,
            version=number,
            artifact_sha256=version.artifact_sha256,
            source_run=version.source_run,
            metrics=version.metrics,
            provenance=version.provenance,
            description=version.description,
            create_time=now(),
        )
        session.add(row)
        model.latest_version = number
        model.update_time = row.create_time
        session.flush()
        for alias in aliases:
            self._point_alias(session, model, alias, row)
        return number

    def _version_row(self, session: Session, model: ModelRow, version: int) -> ModelVersionRow:
        query = select(ModelVersionRow).where(
            ModelVersionRow.model_id == model.id, ModelVersionRow.version == version
        )
        name = f"models/{model.model_id}/versions/{version}"
        return one_or_not_found(session, query, "model version", name)

    def get_version(self, model_id: str, version: int) -> md.ModelVersion:
        with self.reading() as session:
            model = self._model_row(session, model_id)
            return self._version(session, model_id, self._version_row(session, model, version))

    def list_versions(
        self, model_id: str, before: int | None, limit: int
    ) -> tuple[list[md.ModelVersion], int | None]:
        with self.reading() as session:
            model = self._model_row(session, model_id)
            query = select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
            if before is not None:
                query = query.where(ModelVersionRow.version < before)
            rows = list(
                session.scalars(query.order_by(ModelVersionRow.version.desc()).limit(limit + 1))
            )
            more = len(rows) > limit
            rows = rows[:limit]
            versions = [self._version(session, model_id, r) for r in rows]
            return versions, (rows[-1].version if more else None)

    @staticmethod
    def _point_alias(
        session: Session, model: ModelRow, alias: str, version: ModelVersionRow
    ) -> int:
        held = session.get(ModelAliasRow, (model.id, alias))
        previous = 0
        if held is None:
            session.add(ModelAliasRow(model_id=model.id, alias=alias, version_id=version.id))
        else:
            old = session.get(ModelVersionRow, held.version_id)
            previous = old.version if old is not None else 0
            held.version_id = version.id
        model.update_time = now()
        session.flush()
        return previous

    def set_alias(self, model_id: str, alias: str, version: int) -> tuple[md.Model, int]:
        """Moves `alias` to `version` in one transaction; returns the model and the old version."""
        with self.writing() as session:
            model = self._model_row(session, model_id, lock=True)
            target = self._version_row(session, model, version)
            previous = self._point_alias(session, model, alias, target)
            return self._model(session, model), previous

    def delete_alias(self, model_id: str, alias: str) -> md.Model:
        with self.writing() as session:
            model = self._model_row(session, model_id, lock=True)
            held = session.get(ModelAliasRow, (model.id, alias))
            if held is None:
                raise NotFound("model alias", f"models/{model_id}@{alias}")
            session.delete(held)
            model.update_time = now()
            session.flush()
            return self._model(session, model)

    def resolve(self, ref: md.Reference) -> md.ModelVersion:
        with self.reading() as session:
            model = self._model_row(session, ref.model_id)
            if ref.alias is not None:
                held = session.get(ModelAliasRow, (model.id, ref.alias))
                if held is None:
                    raise NotFound("model alias", f"models/{ref.model_id}@{ref.alias}")
                row = session.get(ModelVersionRow, held.version_id)
                assert row is not None  # the foreign key guarantees it
            else:
                number = ref.version if ref.version is not None else model.latest_version
                if number == 0:
                    raise NotFound(
                        "model version", f"models/{ref.model_id}", "model has no versions yet"
                    )
                row = self._version_row(session, model, number)
            return self._version(session, ref.model_id, row)

    # Artifacts.

    def record_artifact(self, sha256: str, size: int, content_type: str) -> tuple[Any, bool]:
        """Records blob metadata once; returns (row values, whether it was new)."""

        def record(session: Session) -> tuple[Any, bool]:
            row = session.get(ArtifactRow, sha256)
            created = row is None
            if row is None:
                row = ArtifactRow(
                    sha256=sha256, size_bytes=size, content_type=content_type, create_time=now()
                )
                session.add(row)
                session.flush()
            return (row.sha256, row.size_bytes, row.content_type, utc(row.create_time)), created

        return self.write_retrying(record)

    def get_artifact(self, sha256: str) -> tuple[str, int, str, Any]:
        with self.reading() as session:
            row = session.get(ArtifactRow, sha256)
            if row is None:
                raise NotFound("artifact", f"artifacts/{sha256}")
            return row.sha256, row.size_bytes, row.content_type, utc(row.create_time)

    # Evaluations.

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
        model = self._model_row(session, model_id)
        version_row = self._version_row(session, model, version)
        row = EvaluationRow(
            uid=new_uid(),
            model_version_id=version_row.id,
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
                model = self._model_row(session, model_id)
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

    def list_items(
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
