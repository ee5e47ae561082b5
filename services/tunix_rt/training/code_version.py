"""The version of tunix-rt that ran a job, for provenance: package version plus git commit."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path


def describe() -> str:
    try:
        version = metadata.version("tunix-rt")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+{commit}" if commit else version
