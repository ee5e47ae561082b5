"""Model directories as registry artifacts: a deterministic tar (sorted names, zeroed times and
owners, so the same files always make the same sha256), what such a tar may hold, and its
unpacking."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

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


# Member names quoted in a problem are cut to this many characters: a tar name can be megabytes
# (PAX headers), and a status message must stay small.
_NAME_CHARS = 120


def member_problems(members: Iterable[tarfile.TarInfo]) -> list[tuple[str, str]]:
    """(member name, what is wrong) for each member that has no place in a model directory tar.

    Only regular files and directories at relative paths inside the directory belong there:
    an absolute path or `..` points outside it, a symbolic or hard link at some other file, and a
    device or FIFO is no file at all. `unpack_model_dir`'s `data` filter refuses most of these
    only when a consumer unpacks the tar, long after it was registered; the registry checks this
    first (validate.validate_tar), so no such tar is ever registered as a model version. A file
    where another member makes a directory (or the reverse) could not be unpacked either.
    """
    problems: list[tuple[str, str]] = []
    files: set[PurePosixPath] = set()
    directories: set[PurePosixPath] = set()  # those named and those implied by a member's path
    for member in members:
        path = PurePosixPath(member.name)
        if member.issym() or member.islnk():
            kind = "symbolic" if member.issym() else "hard"
            problem = f"is a {kind} link (to {_quoted(member.linkname)})"
        elif not (member.isfile() or member.isdir()):
            problem = "is not a regular file or directory"
        elif path.is_absolute():
            problem = "is an absolute path"
        elif ".." in path.parts:
            problem = "escapes the model directory (..)"
        elif any(p in files for p in path.parents) or path in (
            directories if member.isfile() else files
        ):
            problem = "needs a file and a directory at one path"
        else:
            (files if member.isfile() else directories).add(path)
            directories.update(path.parents)
            continue
        problems.append((_quoted(member.name), problem))
    return problems


def _quoted(name: str) -> str:
    return repr(name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS] + "...")


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
