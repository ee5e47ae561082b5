"""The line protocol between a training worker process and its training service.

The worker writes one JSON object per line to its stdout (the service reads the pipe); everything
else it prints goes to stderr, which the service keeps in the job's log file. Each object has an
`event` key:

    {"event": "phase", "phase": "TRAINING"}
    {"event": "progress", "step": 12, "total_steps": 300, "epoch": 0.4}
    {"event": "metrics", "step": 12, "values": {"loss": 2.1, ...}}
    {"event": "log", "level": "INFO", "message": "..."}
    {"event": "checkpoint", "step": 100, "path": "/.../checkpoints/100", "metrics": {...}}
    {"event": "registered", "model_version": "models/m/versions/3", "artifact": "artifacts/..."}
    {"event": "failed", "reason": "NON_FINITE_LOSS", "message": "...", "step": 12}

Exit codes: 0 success (after `registered`), EXIT_FAILED after `failed`, EXIT_CANCELLED when it
stopped because it was asked to (SIGTERM).
"""

from __future__ import annotations

import json
import os
from typing import Any

EXIT_FAILED = 3
EXIT_CANCELLED = 4

# Set by the Ray executor (executors/ray_ranks.py) on each rank of a job spanning nodes: this
# worker is rank TUNIX_RT_RANK of TUNIX_RT_WORLD_SIZE, rank 0's process group at
# TUNIX_RT_RENDEZVOUS (host:port); rank 0 alone writes events that the service applies.
RANK_ENV, WORLD_ENV, RENDEZVOUS_ENV = "TUNIX_RT_RANK", "TUNIX_RT_WORLD_SIZE", "TUNIX_RT_RENDEZVOUS"


def node_rank() -> tuple[int, int, str] | None:
    """(rank, world size, rank 0's host:port) when the executor started this worker as one rank
    of a job spanning nodes; None for a worker that is the whole job."""
    world = int(os.environ.get(WORLD_ENV) or 1)
    if world <= 1:
        return None
    return int(os.environ[RANK_ENV]), world, os.environ[RENDEZVOUS_ENV]


def encode(event: str, **fields: Any) -> bytes:
    return (json.dumps({"event": event, **fields}, allow_nan=True) + "\n").encode()


def decode(line: bytes) -> dict[str, Any] | None:
    """The event on a line, or None for a line that is not a protocol event."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("event"), str) else None
