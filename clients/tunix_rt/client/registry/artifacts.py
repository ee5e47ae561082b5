"""The registry client's calls on artifacts: chunked uploads, and downloads verified against the
artifact's sha256 that resume where a broken stream stopped."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import grpc

from tunix_rt.client import names
from tunix_rt.client.chunks import Progress, file_chunks, file_sha256, split_bytes
from tunix_rt.client.errors import IntegrityError
from tunix_rt.client.registry.base import RegistryCalls
from tunix_rt.v1 import artifact_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

# Artifact chunks: 1 MiB, the server's default download chunk and well under its 4 MiB limit.
ARTIFACT_CHUNK_BYTES = 1024 * 1024
# A download that breaks mid-stream resumes from the bytes it has, this many times.
DOWNLOAD_RESUMES = 3


class ArtifactCalls(RegistryCalls):
    """Artifacts: content-addressed blobs (model directories, checkpoints, files)."""

    def upload_artifact(
        self,
        data: Path | str | bytes,
        *,
        content_type: str = "",
        chunk_size: int = ARTIFACT_CHUNK_BYTES,
        progress: Progress | None = None,
    ) -> pb.UploadArtifactResponse:
        """Uploads a file (a `str` is a path) or bytes. The header carries the sha256 and size, so
        the server rejects a corrupted transfer instead of storing it."""
        if isinstance(data, bytes):
            sha256, size = hashlib.sha256(data).hexdigest(), len(data)
            chunks = split_bytes(data, chunk_size, progress)
        else:
            path = Path(data)
            sha256, size = file_sha256(path)
            chunks = file_chunks(path, chunk_size, progress)
        header = pb.ArtifactHeader(sha256=sha256, size_bytes=size, content_type=content_type)

        def requests() -> Iterator[pb.UploadArtifactRequest]:
            yield pb.UploadArtifactRequest(header=header)
            for chunk in chunks:
                yield pb.UploadArtifactRequest(chunk=chunk)

        response: pb.UploadArtifactResponse = self._stub.UploadArtifact(
            requests(), timeout=self.stream_timeout
        )
        return response

    def get_artifact(self, name: str) -> artifact_pb2.Artifact:
        request = pb.GetArtifactRequest(name=names.artifact(name))
        response: pb.GetArtifactResponse = self._stub.GetArtifact(request, timeout=self.timeout)
        return response.artifact

    def iter_artifact(
        self, name: str, *, offset: int = 0, chunk_size: int = ARTIFACT_CHUNK_BYTES
    ) -> Iterator[bytes]:
        """The artifact's content from `offset`, chunk by chunk, as the server streams it."""
        request = pb.DownloadArtifactRequest(
            name=names.artifact(name), offset=offset, chunk_size=chunk_size
        )
        responses: Iterable[pb.DownloadArtifactResponse] = self._stub.DownloadArtifact(
            request, timeout=self.stream_timeout
        )
        expected = offset
        for response in responses:
            if response.offset != expected:
                raise IntegrityError(
                    f"{name}: chunk at offset {response.offset}, expected {expected}"
                )
            expected += len(response.chunk)
            yield response.chunk

    def download_artifact(
        self, name: str, dest: Path | str, *, progress: Progress | None = None
    ) -> artifact_pb2.Artifact:
        """Writes the artifact to `dest`, verified against its sha256.

        The bytes go to `dest.part` first and are renamed into place only when complete and
        verified, so `dest` never holds a partial or corrupt file. A stream that breaks with
        UNAVAILABLE resumes from the bytes already written.
        """
        artifact = self.get_artifact(name)
        target = Path(dest)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        written = 0
        try:
            with partial.open("wb") as out:
                for attempt in range(DOWNLOAD_RESUMES + 1):
                    try:
                        for chunk in self.iter_artifact(artifact.name, offset=written):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            if progress is not None:
                                progress(len(chunk))
                        break
                    except grpc.RpcError as error:
                        if (
                            error.code() != grpc.StatusCode.UNAVAILABLE
                            or attempt == DOWNLOAD_RESUMES
                        ):
                            raise
            if digest.hexdigest() != artifact.sha256 or written != artifact.size_bytes:
                raise IntegrityError(
                    f"{artifact.name}: got {written} bytes with sha256 {digest.hexdigest()}, "
                    f"expected {artifact.size_bytes} bytes"
                )
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return artifact
