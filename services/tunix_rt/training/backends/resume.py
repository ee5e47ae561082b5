"""What a resume must match: the `run.json` a job's working directory records on its first start.

Checkpoints continue one data stream and one model; starting again in the same directory with a
different tokenizer, data or batching would silently train on something else, so it is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunix_rt.common.errors import FailedPrecondition

RUN_FILE = "run.json"


class ResumeMismatch(FailedPrecondition):
    """The working directory's checkpoints belong to a different data stream or model."""

    reason = "RESUME_MISMATCH"


def check_run(workdir: Path, fingerprint: dict[str, Any]) -> bool:
    """Records `fingerprint` on the first start; on later starts raises ResumeMismatch when it
    differs. True when checkpoints from an earlier start may exist."""
    path = workdir / RUN_FILE
    if path.exists():
        recorded = json.loads(path.read_text())
        changed = sorted(k for k in fingerprint if recorded.get(k) != fingerprint[k])
        if changed:
            raise ResumeMismatch(
                f"the checkpoints in {workdir} were made with a different {', '.join(changed)}"
            )
        return True
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    return False
