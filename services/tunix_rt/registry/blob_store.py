"""A content-addressed blob store on the local filesystem.

Blobs live at `{root}/blobs/{sha[:2]}/{sha[2:4]}/{sha}`; an upload is written to `{root}/tmp/`,
hashed while it streams, and renamed into place only once verified, so a reader never sees a partial
blob and the same bytes are stored once. Digests are checked to be 64 lowercase hex chars and the
resolved path to stay under the root, so no name can reach outside the store.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tunix_rt.common.errors import InvalidArgument, NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_digest(sha256: str, field: str = "sha256") -> str:
    if not _SHA256.match(sha256):
        raise InvalidArgument.field(field, "must be 64 lowercase hex characters (a sha256)")
    return sha256


class PendingBlob:
    """An upload in progress: bytes are written to a temp file and hashed as they arrive."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.path = store.tmp_dir / uuid.uuid4().hex
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in commit/discard
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> bool:
        """Moves the verified blob into place; returns False when the content was already stored."""
        self._file.close()
        target = self._store.path_for(self.sha256)
        if target.exists():
            self.path.unlink(missing_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.path, target)
        return True

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    """Stores and reads blobs by sha256 under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.blob_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        check_digest(sha256)
        path = (self.blob_dir / sha256[:2] / sha256[2:4] / sha256).resolve()
        # Belt and braces: the digest check already rules out separators and `..`.
        if not path.is_relative_to(self.blob_dir):
            raise InvalidArgument.field("name", "escapes the artifact store")
        return path

    def begin(self) -> PendingBlob:
        return PendingBlob(self)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def read(self, sha256: str, offset: int = 0, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yields the blob's bytes from `offset` in chunks."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFound("artifact", f"artifacts/{sha256}", "artifact content is missing")
        with open(path, "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(chunk_size):
                yield chunk
