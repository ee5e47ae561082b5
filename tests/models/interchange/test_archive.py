"""Model-directory tars: unpacked all or nothing, so a download interrupted midway is never taken
for the model (the training worker reuses a base model already in its workdir)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tunix_rt.client.registry import RegistryClient
from tunix_rt.models.interchange.archive import pack_model_dir, unpack_model_dir
from tunix_rt.training.worker import download_model


def _model_dir(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"\1" * 64)
    return path


def _breaks_midway(path: Path) -> Path:
    """A tar whose first member extracts and whose second the `data` filter refuses, as if the
    extraction were killed after config.json."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("config.json", b"{}"), ("../escape.safetensors", b"\1" * 8)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def test_unpack_is_all_or_nothing(tmp_path: Path) -> None:
    with pytest.raises(tarfile.TarError):
        unpack_model_dir(_breaks_midway(tmp_path / "bad.tar"), tmp_path / "out" / "model")
    assert list((tmp_path / "out").iterdir()) == []  # no target, no scratch left behind

    source = _model_dir(tmp_path / "src")
    (tmp_path / "good.tar").write_bytes(pack_model_dir(source))
    target = unpack_model_dir(tmp_path / "good.tar", tmp_path / "out" / "model")
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert (target / "model.safetensors").read_bytes() == b"\1" * 64


def test_worker_download_leaves_no_partial_base_model(
    registry: RegistryClient, tmp_path: Path
) -> None:
    """Through the real registry: a failed extraction leaves no `base-model` for the retried
    worker to reuse; a complete one is reused without downloading again."""
    bad = registry.upload_artifact(
        _breaks_midway(tmp_path / "bad.tar").read_bytes(), content_type="application/x-bytes"
    )
    target = tmp_path / "work" / "base-model"
    with pytest.raises(tarfile.TarError):
        download_model(registry.stub, bad.artifact.name, target)
    assert list((tmp_path / "work").iterdir()) == []

    good = registry.upload_artifact(pack_model_dir(_model_dir(tmp_path / "src")))
    assert download_model(registry.stub, good.artifact.name, target) == target
    assert (target / "model.safetensors").read_bytes() == b"\1" * 64
    # Complete, so reused: the bad artifact is not even fetched.
    assert download_model(registry.stub, bad.artifact.name, target) == target
    assert (target / "model.safetensors").read_bytes() == b"\1" * 64
