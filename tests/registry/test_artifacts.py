"""Artifacts through the real server: streamed uploads verified by sha256, content-addressed storage
(the same bytes once), streamed downloads, and names that cannot escape the store."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.registry.helpers import (
    Stub,
    bad_request_fields,
    error_reason,
    race,
    resource_info,
    rpc_error,
    unique,
)
from tests.support import LoopThread
from tunix_rt.common.config import ConfigError
from tunix_rt.registry.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
from tunix_rt.registry.server import (
    MAX_ARTIFACT_BYTES_ENV,
    RunningRegistry,
    resolve_max_artifact_bytes,
    start_registry,
)
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(
    stub: Stub,
    data: bytes,
    chunk: int = 1000,
    *,
    sha256: str = "",
    size_bytes: int = 0,
    content_type: str = "",
) -> pb.UploadArtifactResponse:
    """Uploads `data` in `chunk`-byte messages after a header with the given fields."""
    header = pb.ArtifactHeader(sha256=sha256, size_bytes=size_bytes, content_type=content_type)
    messages = [pb.UploadArtifactRequest(header=header)] + [
        pb.UploadArtifactRequest(chunk=data[start : start + chunk])
        for start in range(0, len(data), chunk)
    ]
    response: pb.UploadArtifactResponse = stub.UploadArtifact(iter(messages))
    return response


def download(stub: Stub, name: str, **kw: int) -> list[pb.DownloadArtifactResponse]:
    return list(stub.DownloadArtifact(pb.DownloadArtifactRequest(name=name, **kw)))


def blob_files(server: RunningRegistry, digest: str) -> list[Path]:
    return sorted(server.registry.blobs.blob_dir.rglob(digest))


def leftovers(server: RunningRegistry) -> list[str]:
    return os.listdir(server.registry.blobs.tmp_dir)


def content(size: int) -> bytes:
    return (unique("blob").encode() * (size // 16 + 1))[:size]


def test_upload_in_chunks_stores_content_once_on_disk(
    stub: Stub, registry_server: RunningRegistry
) -> None:
    data = content(10_500)
    digest = sha(data)
    response = upload(stub, data, sha256=digest, size_bytes=len(data), content_type="text/plain")
    artifact = response.artifact
    assert not response.deduplicated
    assert (artifact.name, artifact.sha256) == (f"artifacts/{digest}", digest)
    assert (artifact.size_bytes, artifact.content_type) == (len(data), "text/plain")
    assert artifact.create_time.seconds > 0
    assert stub.GetArtifact(pb.GetArtifactRequest(name=artifact.name)).artifact == artifact
    files = blob_files(registry_server, digest)
    assert len(files) == 1
    assert files[0].read_bytes() == data
    assert files[0].is_relative_to(registry_server.registry.blobs.blob_dir)
    assert leftovers(registry_server) == []


def test_same_bytes_again_are_deduplicated(stub: Stub, registry_server: RunningRegistry) -> None:
    data = content(5000)
    first = upload(stub, data, sha256=sha(data)).artifact
    again = upload(stub, data, chunk=777)  # other chunking, no digest given
    assert again.deduplicated
    assert again.artifact == first
    assert len(blob_files(registry_server, sha(data))) == 1


def test_concurrent_uploads_of_the_same_bytes(stub: Stub, registry_server: RunningRegistry) -> None:
    data = content(3000)
    outcomes = race(6, lambda _n: upload(stub, data, sha256=sha(data)))
    assert outcomes == {"OK": 6}
    assert len(blob_files(registry_server, sha(data))) == 1
    assert leftovers(registry_server) == []


def test_wrong_sha256_stores_nothing(stub: Stub, registry_server: RunningRegistry) -> None:
    data = content(4000)
    claimed = sha(b"something else")
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: upload(stub, data, sha256=claimed))
    assert bad_request_fields(err) == ["header.sha256"]
    for digest in (sha(data), claimed):
        request = pb.GetArtifactRequest(name=f"artifacts/{digest}")
        rpc_error(grpc.StatusCode.NOT_FOUND, functools.partial(stub.GetArtifact, request))
        assert blob_files(registry_server, digest) == []
    assert leftovers(registry_server) == []


def test_wrong_size_stores_nothing(stub: Stub, registry_server: RunningRegistry) -> None:
    data = content(100)
    err = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: upload(stub, data, sha256=sha(data), size_bytes=101),
    )
    assert bad_request_fields(err) == ["header.size_bytes"]
    assert blob_files(registry_server, sha(data)) == []


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "header"),
        ([pb.UploadArtifactRequest(chunk=b"no header")], "header"),
        (
            [
                pb.UploadArtifactRequest(header=pb.ArtifactHeader()),
                pb.UploadArtifactRequest(header=pb.ArtifactHeader()),
            ],
            "header",
        ),
        ([pb.UploadArtifactRequest(header=pb.ArtifactHeader(sha256="ABC"))], "header.sha256"),
        ([pb.UploadArtifactRequest(header=pb.ArtifactHeader(size_bytes=-1))], "header.size_bytes"),
        (
            [pb.UploadArtifactRequest(header=pb.ArtifactHeader(content_type="x" * 129))],
            "header.content_type",
        ),
        (
            [
                pb.UploadArtifactRequest(header=pb.ArtifactHeader()),
                pb.UploadArtifactRequest(chunk=b"x" * (4 * 1024 * 1024 + 1)),
            ],
            "chunk",
        ),
    ],
)
def test_malformed_uploads_are_invalid(
    stub: Stub,
    registry_server: RunningRegistry,
    messages: list[pb.UploadArtifactRequest],
    field: str,
) -> None:
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.UploadArtifact(iter(messages)))
    assert bad_request_fields(err) == [field]
    assert leftovers(registry_server) == []


def test_empty_content_is_an_artifact(stub: Stub) -> None:
    response = upload(stub, b"", sha256=sha(b""))
    assert (response.artifact.sha256, response.artifact.size_bytes) == (sha(b""), 0)
    assert download(stub, response.artifact.name) == []


def test_download_streams_exactly_the_bytes(stub: Stub) -> None:
    data = os.urandom(2 * 1024 * 1024 + 12_345)
    name = upload(stub, data, chunk=256 * 1024, sha256=sha(data)).artifact.name
    chunks = download(stub, name)
    assert b"".join(c.chunk for c in chunks) == data
    assert [len(c.chunk) for c in chunks] == [1 << 20, 1 << 20, 12_345]  # default 1 MiB chunks
    assert [c.offset for c in chunks] == [0, 1 << 20, 2 << 20]

    small = download(stub, name, chunk_size=300_000, offset=1234)
    assert b"".join(c.chunk for c in small) == data[1234:]
    assert all(len(c.chunk) <= 300_000 for c in small)
    offsets = [c.offset for c in small]
    assert offsets == [1234 + n * 300_000 for n in range(len(small))]
    assert download(stub, name, offset=len(data)) == []


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"offset": -1}, "offset"),
        ({"offset": 10**9}, "offset"),
        ({"chunk_size": -5}, "chunk_size"),
        ({"chunk_size": 4 * 1024 * 1024 + 1}, "chunk_size"),
    ],
)
def test_bad_download_ranges_are_invalid(stub: Stub, kw: dict[str, int], field: str) -> None:
    data = content(64)
    name = upload(stub, data).artifact.name
    err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: download(stub, name, **kw))
    assert bad_request_fields(err) == [field]


ESCAPES = [
    "artifacts/../../etc/passwd",
    "artifacts/" + "a" * 31 + "/" + "b" * 32,  # 64 chars with a separator
    "artifacts/" + "../" * 20 + "etc",
    "artifacts/" + "A" * 64,
    "artifacts/" + "a" * 63,
    "artifacts/" + "a" * 65,
    "artifacts/%2e%2e%2fetc%2fpasswd",
    "/etc/passwd",
    "artifacts//etc/passwd",
    "artifacts/" + "a" * 63 + "\x00",
    "",
]


@pytest.mark.parametrize("name", ESCAPES)
def test_names_cannot_escape_the_store(stub: Stub, name: str) -> None:
    for call in (
        lambda: stub.GetArtifact(pb.GetArtifactRequest(name=name)),
        lambda: download(stub, name),
    ):
        err = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, call)
        assert bad_request_fields(err) == ["name"]


def test_unknown_artifact_is_not_found(stub: Stub) -> None:
    name = "artifacts/" + sha(unique().encode())
    err = rpc_error(grpc.StatusCode.NOT_FOUND, lambda: download(stub, name))
    assert resource_info(err).resource_name == name
    err = rpc_error(
        grpc.StatusCode.NOT_FOUND, lambda: stub.GetArtifact(pb.GetArtifactRequest(name=name))
    )
    assert resource_info(err).resource_name == name


# Issue 10, finding 7: no artifact size limit existed (a 512 MiB upload was accepted).
LIMIT = 10_000


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry that stores artifacts of at most LIMIT bytes."""
    loop = LoopThread()
    try:
        data_dir = tmp_path_factory.mktemp("small")
        running = loop.run(start_registry(data_dir=data_dir, max_artifact_bytes=LIMIT))
        yield running
        loop.run(running.stop(0))
    finally:
        loop.close()


@pytest.fixture(scope="module")
def small_stub(small_registry: RunningRegistry) -> Iterator[Stub]:
    with grpc.insecure_channel(small_registry.address) as channel:
        yield registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("claimed", [True, False], ids=["claimed", "streamed"])
def test_an_artifact_over_the_limit_stores_nothing(
    small_stub: Stub, small_registry: RunningRegistry, claimed: bool
) -> None:
    data = content(LIMIT + 1)
    size = len(data) if claimed else 0
    err = rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        lambda: upload(small_stub, data, chunk=4096, size_bytes=size),
    )
    assert f"limit of {LIMIT} bytes" in (err.details() or "")
    assert error_reason(err) == "ARTIFACT_TOO_LARGE"
    request = pb.GetArtifactRequest(name=f"artifacts/{sha(data)}")
    rpc_error(grpc.StatusCode.NOT_FOUND, functools.partial(small_stub.GetArtifact, request))
    assert blob_files(small_registry, sha(data)) == []
    assert leftovers(small_registry) == []


def test_an_artifact_at_the_limit_is_stored(small_stub: Stub) -> None:
    data = content(LIMIT)
    assert upload(small_stub, data, chunk=4096, size_bytes=LIMIT).artifact.size_bytes == LIMIT


def test_the_limit_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MAX_ARTIFACT_BYTES_ENV, "123")
    assert resolve_max_artifact_bytes(None) == 123
    assert resolve_max_artifact_bytes(456) == 456  # an explicit option wins
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv(MAX_ARTIFACT_BYTES_ENV, bad)
        with pytest.raises(ConfigError, match=MAX_ARTIFACT_BYTES_ENV):
            resolve_max_artifact_bytes(None)
    monkeypatch.delenv(MAX_ARTIFACT_BYTES_ENV)
    assert resolve_max_artifact_bytes(None) == DEFAULT_MAX_ARTIFACT_BYTES
