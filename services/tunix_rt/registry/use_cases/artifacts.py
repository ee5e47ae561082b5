"""Artifact use cases: streamed upload (verified, then stored once by content), get, and streamed
download.

The servicer adapts the gRPC message streams: it hands each received chunk to an `Upload` and
sends each chunk `download_artifact` yields.
"""

from __future__ import annotations

from collections.abc import Iterator

from tunix_rt.registry import artifacts as ar
from tunix_rt.registry.blob_store import BlobStore, PendingBlob
from tunix_rt.registry.storage.repository import Repository


class Upload:
    """An upload in progress: chunks go to a temp file, hashed as they come; `finish` verifies
    them against the header and stores them, `discard` drops them. Call one of the two."""

    def __init__(
        self, repository: Repository, header: ar.UploadHeader, pending: PendingBlob, limit: int
    ):
        self._repo = repository
        self._header = header
        self._pending = pending
        self._limit = limit

    def write(self, chunk: bytes) -> None:
        ar.check_chunk(chunk)
        # Checked before the chunk is written: the temp file never grows past the limit.
        ar.check_size(self._pending.size + len(chunk), self._limit)
        self._pending.write(chunk)

    def finish(self) -> tuple[ar.Artifact, bool]:
        """Stores the verified content; returns the artifact and whether it was stored before
        (bytes and metadata both)."""
        ar.check_content(self._header, self._pending.sha256, self._pending.size)
        fresh_bytes = self._pending.commit()
        artifact, fresh_row = self._repo.record_artifact(
            self._pending.sha256, self._pending.size, self._header.content_type
        )
        return artifact, not (fresh_bytes or fresh_row)

    def discard(self) -> None:
        """Drops what was received; harmless after `finish`, which leaves nothing to drop."""
        self._pending.discard()


class Artifacts:
    """The artifact use cases over the repository (metadata) and the blob store (bytes)."""

    def __init__(
        self,
        repository: Repository,
        blobs: BlobStore,
        max_bytes: int = ar.DEFAULT_MAX_ARTIFACT_BYTES,
    ) -> None:
        self.repo = repository
        self.blobs = blobs
        self.max_bytes = max_bytes

    def upload_artifact(self, header: ar.UploadHeader) -> Upload:
        """Checks what an upload claims (a claimed size over the limit is refused before any
        byte arrives) and starts it."""
        ar.check_header(header)
        ar.check_size(header.size_bytes, self.max_bytes)
        return Upload(self.repo, header, self.blobs.begin(), self.max_bytes)

    def get_artifact(self, name: str) -> ar.Artifact:
        return self.repo.get_artifact(ar.parse_name(name, "name"))

    def download_artifact(
        self, name: str, offset: int, chunk_size: int
    ) -> Iterator[tuple[int, bytes]]:
        """(offset, chunk) pairs of the content from `offset`, `chunk_size` bytes at a time
        (0: DEFAULT_CHUNK), read as they are taken."""
        artifact = self.get_artifact(name)
        ar.check_range(artifact, offset, chunk_size)
        chunks = self.blobs.read(artifact.sha256, offset, chunk_size or ar.DEFAULT_CHUNK)

        def positioned() -> Iterator[tuple[int, bytes]]:
            position = offset
            for chunk in chunks:
                yield position, chunk
                position += len(chunk)

        return positioned()
