"""The local disk cache of model artifacts: `data_dir/artifacts/<sha256>/` holds the unpacked model
directory of `artifacts/<sha256>`, fetched once with DownloadArtifact.

A download is checked against its hash, unpacked into a temporary directory beside the cache and
renamed into place, so a directory in the cache is always complete: a crash mid-download leaves
only a temporary directory, removed on the next fetch. Concurrent fetches of one artifact in this
process download once; two processes sharing a data dir at worst both download, and the second
rename loses harmlessly.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

import grpc

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument
from tunix_rt.common.outgoing import registry_error
from tunix_rt.models.interchange.archive import unpack_model_dir
from tunix_rt.v1 import registry_service_pb2 as rpb

_TMP_PREFIX = ".tmp-"


class ArtifactCache:
    """Fetches and unpacks artifacts under `root`; thread-safe."""

    def __init__(self, registry_stub: Any, root: Path) -> None:
        self._stub = registry_stub
        self.root = root
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(_TMP_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)

    def path(self, artifact: str) -> Path:
        """Where `artifact` (`artifacts/{sha256}`) is, or will be, unpacked."""
        digest = artifact.removeprefix("artifacts/")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InvalidArgument.field("artifact", f"{artifact!r} is not artifacts/{{sha256}}")
        return self.root / digest

    def fetch(self, artifact: str) -> Path:
        """The unpacked model directory of `artifact`, downloading it when not cached."""
        target = self.path(artifact)
        if target.is_dir():
            return target
        with self._lock:
            lock = self._fetching.setdefault(artifact, threading.Lock())
        with lock:
            if not target.is_dir():  # another thread may have fetched it meanwhile
                self._download(artifact, target)
        with self._lock:
            self._fetching.pop(artifact, None)
        return target

    def _download(self, artifact: str, target: Path) -> None:
        expected = target.name
        with tempfile.TemporaryDirectory(prefix=_TMP_PREFIX, dir=self.root) as scratch:
            archive_path = Path(scratch) / "artifact.tar"
            digest = hashlib.sha256()
            try:
                with open(archive_path, "wb") as out:
                    for part in self._stub.DownloadArtifact(
                        rpb.DownloadArtifactRequest(name=artifact)
                    ):
                        digest.update(part.chunk)
                        out.write(part.chunk)
            except grpc.RpcError as err:
                raise registry_error(err, artifact, "artifact") from None
            if digest.hexdigest() != expected:
                raise FailedPrecondition(
                    f"{artifact}: downloaded content hashes to {digest.hexdigest()}"
                )
            unpacked = Path(scratch) / "model"
            try:
                unpack_model_dir(archive_path, unpacked)
            except (tarfile.TarError, OSError) as err:
                raise FailedPrecondition(
                    f"{artifact} is not a model directory tar: {err}"
                ) from None
            if not (unpacked / "config.json").is_file():
                raise FailedPrecondition(f"{artifact} holds no config.json: not a model directory")
            try:
                unpacked.rename(target)
            except OSError:
                if not target.is_dir():  # not a lost race with another process
                    raise
