"""The README's "Using it" walkthrough, run as written.

The section's bash blocks are read from README.md: the first starts the three services (one per
line, each in the background here as in its own terminal), the second is `tunix-rt up` (their
alternative, run after them), the third is the walkthrough, run by bash top to bottom with
`set -e`. Only what the README says the test changes is changed: free ports for 50051-50053, a
temporary working directory (with `.venv` and `datasets/` linked in) for `data/` and the files
it writes, and `--model llama3-tiny --steps 12 --eval-interval 6` for `--model llama3-small
--steps 300`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Using it"
DEFAULT_PORTS = {"50051": "registry", "50052": "training", "50053": "inference"}
HEALTH = {
    "registry": "tunix_rt.v1.RegistryService",
    "training": "tunix_rt.v1.TrainingService",
    "inference": "tunix_rt.v1.InferenceService",
}
# The substitutions README.md announces for this test: a preset and a run length that train in
# seconds. Twelve steps would evaluate after every one (the default interval is a tenth of the
# run, at least 1) where the README's 300 evaluate ten times: that was ~1 s of 64 greedy answers
# per step of the torch job (14 s of its 25 s on the 2-core host).
SMALLER = {"llama3-small": "llama3-tiny", "--steps 300": "--steps 12 --eval-interval 6"}
STARTUP_TIMEOUT_S = 120.0
WALKTHROUGH_TIMEOUT_S = 420.0

pytestmark = pytest.mark.slow


def bash_blocks(markdown: str) -> list[str]:
    """The ```bash blocks of the "Using it" section, in order."""
    start = markdown.index(SECTION + "\n")
    end = markdown.find("\n## ", start + len(SECTION))
    section = markdown[start : end if end >= 0 else None]
    section = section[: section.find("\n### ")] if "\n### " in section else section
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def localize(text: str, ports: dict[str, int]) -> str:
    for default, service in DEFAULT_PORTS.items():
        text = text.replace(default, str(ports[service]))
    for large, small in SMALLER.items():
        text = text.replace(large, small)
    return text


def wait_page(url: str, timeout: float = 60.0) -> None:
    """Until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200 in {timeout:g} s"
        time.sleep(0.2)


def wait_serving(address: str, service: str) -> None:
    """Until the service's health check says SERVING (the call waits for the server to listen)."""
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = health.Check(
            health_pb2.HealthCheckRequest(service=HEALTH[service]),
            timeout=STARTUP_TIMEOUT_S,
            wait_for_ready=True,
        )
    assert response.status == health_pb2.HealthCheckResponse.SERVING, (address, service)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh directory that looks like the repository's root to the README's commands."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "datasets").symlink_to(ROOT / "datasets")
    return tmp_path


@pytest.fixture
def env() -> dict[str, str]:
    values = os.environ.copy()
    values["TUNIX_RT_LOG_FORMAT"] = "text"
    for name in ("TUNIX_RT_REGISTRY", "TUNIX_RT_TRAINING", "TUNIX_RT_INFERENCE"):
        values.pop(name, None)
    return values


@pytest.fixture
def services(workdir: Path, env: dict[str, str]) -> Iterator[dict[str, int]]:
    """The first block's services, each in the background, on free ports; stopped at the end."""
    ports = {service: free_port() for service in DEFAULT_PORTS.values()}
    serve_block = bash_blocks((ROOT / "README.md").read_text())[0]
    processes = []
    try:
        for number, line in enumerate(serve_block.strip().splitlines()):
            command = localize(line, ports)
            service = re.search(r"tunix-rt serve (\w+)", command)
            assert service is not None, line
            with (workdir / f"serve-{number}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        ["bash", "-c", "exec " + command],
                        cwd=workdir,
                        env=env,
                        stdout=log,
                        stderr=log,
                    )
                )
            wait_serving(f"127.0.0.1:{ports[service.group(1)]}", service.group(1))
        yield ports
    finally:
        for process in reversed(processes):
            stop(process)


def test_the_blocks_are_there() -> None:
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 3
    assert all("tunix-rt serve" in line for line in blocks[0].strip().splitlines())
    assert blocks[1].strip().startswith(".venv/bin/tunix-rt up")
    assert "tunix-rt serve" not in blocks[2] and "tunix-rt up" not in blocks[2]
    # What the walkthrough test substitutes is there to substitute.
    assert all(large in blocks[2] for large in SMALLER)


def test_the_walkthrough_runs_as_written(
    services: dict[str, int], workdir: Path, env: dict[str, str]
) -> None:
    walkthrough = localize(bash_blocks((ROOT / "README.md").read_text())[2], services)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=WALKTHROUGH_TIMEOUT_S,
    )
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in workdir.glob("serve-*.log"))
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n{logs}"
    out, err = result.stdout, result.stderr
    # What the walkthrough's comments promise.
    assert "arith-2: cancelled" in out
    # The resumed job is queued, or already running when a device was free before the reply.
    assert re.search(r"arith-2: (queued|running)[^\n]*, resuming from", out), out[-4000:]
    assert "eval answer accuracy (in-training, up to 64 examples)" in out
    assert "models/my-model/versions/2" in out
    assert "loading my-model@candidate…" in err
    assert "answer accuracy (" in out and "BY" in out
    assert (workdir / "curves.png").stat().st_size > 0
    assert (workdir / "hf-dir" / "config.json").is_file()


def test_up_serves_the_three_on_the_same_ports(workdir: Path, env: dict[str, str]) -> None:
    """The alternative block, alone (it takes the ports of the first): all three answer, and so
    does the dashboard it starts beside them."""
    ports = {service: free_port() for service in DEFAULT_PORTS.values()}
    dashboard = free_port()
    line = bash_blocks((ROOT / "README.md").read_text())[1].strip()
    flags = " ".join(f"--{service}-port {port}" for service, port in ports.items())
    flags += f" --dashboard-port {dashboard}"
    command = line.replace("tunix-rt up", f"tunix-rt up {flags}", 1)
    with (workdir / "up.log").open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", "exec " + command], cwd=workdir, env=env, stdout=log, stderr=log
        )
    try:
        for service, port in ports.items():
            wait_serving(f"127.0.0.1:{port}", service)
        wait_page(f"http://127.0.0.1:{dashboard}/jobs")
    finally:
        stop(process)
    assert (workdir / "data" / "registry").is_dir()
