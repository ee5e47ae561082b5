"""Model directories as registry artifacts: a deterministic tar (sorted names, zeroed times and
owners, so the same files always make the same sha256) and its unpacking."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
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
    """Extracts a packed model directory into `target`, which must not exist (tarfile's `data`
    filter refuses links and paths that escape it). Extracted into a sibling temporary directory
    and renamed into place, so `target` exists only once complete: a process killed midway
    leaves no half directory that a later run would take for the model. Returns `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with tarfile.open(tar_path, mode="r:") as archive:
            archive.extractall(scratch, filter="data")
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target
