"""Artifact metadata in the database; the bytes live in the blob store."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tunix_rt.common.errors import NotFound
from tunix_rt.registry.artifacts import Artifact
from tunix_rt.registry.storage.base import RepositoryBase, now, utc
from tunix_rt.registry.storage.schema import ArtifactRow


def _from_row(row: ArtifactRow) -> Artifact:
    return Artifact(row.sha256, row.size_bytes, row.content_type, utc(row.create_time))


class ArtifactRepository(RepositoryBase):
    """Stores artifact metadata."""

    def record_artifact(self, sha256: str, size: int, content_type: str) -> tuple[Artifact, bool]:
        """Records blob metadata once; returns the artifact and whether it was new."""

        def record(session: Session) -> tuple[Artifact, bool]:
            row = session.get(ArtifactRow, sha256)
            created = row is None
            if row is None:
                row = ArtifactRow(
                    sha256=sha256, size_bytes=size, content_type=content_type, create_time=now()
                )
                session.add(row)
                session.flush()
            return _from_row(row), created

        return self.write_retrying(record)

    def get_artifact(self, sha256: str) -> Artifact:
        with self.reading() as session:
            row = session.get(ArtifactRow, sha256)
            if row is None:
                raise NotFound("artifact", f"artifacts/{sha256}")
            return _from_row(row)
