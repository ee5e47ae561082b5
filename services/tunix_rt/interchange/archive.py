"""Model directories as registry artifacts: a deterministic tar (sorted names, zeroed times and
owners, so the same files always make the same sha256) and its unpacking."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

CONTENT_TYPE = "application/x-tar"


def pack_model_dir(model_dir: Path) -> bytes:
    """The tar of every file under `model_dir`, by relative path."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(model_dir)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(path, "rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


def unpack_model_dir(tar_path: Path, target: Path) -> Path:
    """Extracts a packed model directory into `target` (tarfile's `data` filter refuses links
    and paths that escape it). Returns `target`."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, mode="r:") as archive:
        archive.extractall(target, filter="data")
    return target
