"""A job's checkpoints at a storage URI every node reaches, through fsspec (`file://`, `s3://`,
`gs://`, … whatever fsspec and its plugins open): the durable copy of what a worker keeps in its
job directory, so an attempt on another node (its job directory empty) resumes from there.

    {uri}/jobs/{job}/checkpoints/{step}/     a copy of workdir/checkpoints/{step}/ (either backend)
    {uri}/jobs/{job}/checkpoints/{step}.done written last: the copy is complete
    {uri}/jobs/{job}/tokenizer/, run.json     what a resume must match (backends/resume.py)

The worker (rank 0, the one that writes checkpoints) pushes each checkpoint after the backend saved
it and before the service records it, and pulls the newest complete one into an empty job
directory before training. Set by the service as $TUNIX_RT_CHECKPOINT_URI
(`tunix-rt serve training --checkpoint-uri URI`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fsspec

URI_ENV = "TUNIX_RT_CHECKPOINT_URI"
CHECKPOINTS, TOKENIZER, RUN_FILE, DONE = "checkpoints", "tokenizer", "run.json", ".done"


class CheckpointStore:
    """One job's directory at a storage URI."""

    def __init__(self, uri: str, job_id: str) -> None:
        self.fs: Any
        self.fs, root = fsspec.core.url_to_fs(uri)
        self.root = f"{root.rstrip('/')}/jobs/{job_id}"

    @classmethod
    def of_environment(cls, job_id: str) -> CheckpointStore | None:
        uri = os.environ.get(URI_ENV, "")
        return cls(uri, job_id) if uri else None

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints stored, oldest first."""
        done = self.fs.glob(f"{self.root}/{CHECKPOINTS}/*{DONE}")
        names = (Path(path).name.removesuffix(DONE) for path in done)
        return sorted(int(name) for name in names if name.isdigit())

    def push(self, workdir: Path, step: int) -> str:
        """Copies the checkpoint of `step` (and the tokenizer and run record, once) from
        `workdir`; its URI."""
        for name in (TOKENIZER, RUN_FILE):
            local = workdir / name
            if local.exists() and not self.fs.exists(f"{self.root}/{name}"):
                self.fs.put(str(local), f"{self.root}/{name}", recursive=local.is_dir())
        target = f"{self.root}/{CHECKPOINTS}/{step}"
        if self.fs.exists(target):  # a copy an earlier attempt left half-written
            self.fs.rm(target, recursive=True)
        self.fs.put(str(workdir / CHECKPOINTS / str(step)), target, recursive=True)
        self.fs.pipe_file(f"{target}{DONE}", b"")
        return f"{self.fs.unstrip_protocol(target)}"

    def pull(self, workdir: Path) -> int:
        """Copies the newest complete checkpoint (and the tokenizer and run record) into
        `workdir` when it lacks it; the step copied, 0 when there was nothing to copy."""
        steps = self.steps()
        if not steps or (workdir / CHECKPOINTS / str(steps[-1])).is_dir():
            return 0
        for name in (TOKENIZER, RUN_FILE):
            remote = f"{self.root}/{name}"
            if not (workdir / name).exists() and self.fs.exists(remote):
                self.fs.get(remote, str(workdir / name), recursive=self.fs.isdir(remote))
        staging = workdir / CHECKPOINTS / f".pull-{steps[-1]}"
        self.fs.get(f"{self.root}/{CHECKPOINTS}/{steps[-1]}", str(staging), recursive=True)
        staging.rename(workdir / CHECKPOINTS / str(steps[-1]))  # complete, or absent
        return steps[-1]
