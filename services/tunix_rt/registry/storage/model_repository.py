"""Registered models, their versions and aliases in the database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunix_rt.common.errors import AlreadyExists, NotFound
from tunix_rt.registry import models as md
from tunix_rt.registry.storage.base import RepositoryBase, now, one_or_not_found, utc
from tunix_rt.registry.storage.schema import ArtifactRow, ModelAliasRow, ModelRow, ModelVersionRow


def model_row(session: Session, model_id: str, *, lock: bool = False) -> ModelRow:
    query = select(ModelRow).where(ModelRow.model_id == model_id)
    if lock:
        query = query.with_for_update()
    return one_or_not_found(session, query, "model", f"models/{model_id}")


def version_row(session: Session, model: ModelRow, version: int) -> ModelVersionRow:
    query = select(ModelVersionRow).where(
        ModelVersionRow.model_id == model.id, ModelVersionRow.version == version
    )
    name = f"models/{model.model_id}/versions/{version}"
    return one_or_not_found(session, query, "model version", name)


class ModelRepository(RepositoryBase):
    """Stores models, their versions and aliases."""

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
            return self._model(session, model_row(session, model_id))

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

    def get_version(self, model_id: str, version: int) -> md.ModelVersion:
        with self.reading() as session:
            model = model_row(session, model_id)
            return self._version(session, model_id, version_row(session, model, version))

    def list_versions(
        self, model_id: str, before: int | None, limit: int
    ) -> tuple[list[md.ModelVersion], int | None]:
        with self.reading() as session:
            model = model_row(session, model_id)
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
            model = model_row(session, model_id, lock=True)
            target = version_row(session, model, version)
            previous = self._point_alias(session, model, alias, target)
            return self._model(session, model), previous

    def delete_alias(self, model_id: str, alias: str) -> md.Model:
        with self.writing() as session:
            model = model_row(session, model_id, lock=True)
            held = session.get(ModelAliasRow, (model.id, alias))
            if held is None:
                raise NotFound("model alias", f"models/{model_id}@{alias}")
            session.delete(held)
            model.update_time = now()
            session.flush()
            return self._model(session, model)

    def resolve(self, ref: md.Reference) -> md.ModelVersion:
        with self.reading() as session:
            model = model_row(session, ref.model_id)
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
                row = version_row(session, model, number)
            return self._version(session, ref.model_id, row)
