"""A job's worker process, as the job manager runs one per attempt: started as
`python -m tunix_rt.training.worker` seeing only the job's devices, read for the protocol events
it writes to its stdout (worker_protocol), stopped (SIGTERM, then SIGKILL after a grace period),
and its exit described for the job's failure.

Its stderr goes to `workdir/worker-<attempt>.log`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from tunix_rt.training import worker_protocol as wp
from tunix_rt.training.devices import worker_environment
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import run_pb2

Process = asyncio.subprocess.Process


async def start(
    spec: TrainSpec,
    workdir: Path,
    attempt: int,
    registry_address: str,
    assignment: run_pb2.DeviceAssignment,
    cores_per_slot: int,
    environment: Mapping[str, str],
) -> Process:
    """Starts the worker of `attempt` on the devices of `assignment`; `environment` adds to this
    process's own (how to dial the registry)."""
    spec_path = await asyncio.to_thread(_write_spec, spec, workdir)
    env = {
        **os.environ,
        **worker_environment(assignment.kind, list(assignment.ids), cores_per_slot),
        **environment,
        "TUNIX_RT_DEVICES": json.dumps(json_format.MessageToDict(assignment)),
        # The worker asks the kernel to kill it when this process dies (see worker.py).
        "TUNIX_RT_PARENT_PID": str(os.getpid()),
    }
    log_path = workdir / f"worker-{attempt}.log"
    with await asyncio.to_thread(open, log_path, "ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tunix_rt.training.worker",
            "--spec",
            str(spec_path),
            "--workdir",
            str(workdir),
            "--registry",
            registry_address,
            "--run",
            f"runs/{spec.job_id}",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
        )


def _write_spec(spec: TrainSpec, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "spec.json"
    path.write_text(spec.dumps())
    return path


async def reports(process: Process) -> AsyncIterator[dict[str, Any]]:
    """The protocol events the worker writes, until it closes its stdout; other lines are
    skipped."""
    assert process.stdout is not None
    async for line in process.stdout:
        event = wp.decode(line)
        if event is not None:
            yield event


def ask_to_stop(process: Process) -> None:
    """SIGTERM: the worker stops at its next step (see worker.py)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)


def stop(process: Process, grace_seconds: float) -> None:
    """Asks the worker to stop, and kills it when it has not after `grace_seconds`."""
    ask_to_stop(process)
    asyncio.get_running_loop().call_later(grace_seconds, _kill, process)


def _kill(process: Process) -> None:
    if process.returncode is None:
        process.kill()


def exit_detail(code: int) -> str:
    """Why a job failed whose worker exited with `code` without reporting a failure."""
    if code < 0:
        return f"WORKER_KILLED: the worker was killed by {signal.Signals(-code).name}"
    return f"WORKER_EXITED: the worker exited with code {code}"
