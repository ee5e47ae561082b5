"""`tunix-rt serve registry` as users run it: a process that serves until SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tunix_rt.client.errors import describe_rpc_error
from tunix_rt.client.registry import RegistryClient
from tunix_rt.v1 import registry_service_pb2 as pb

# Process start, imports and migrations; slow on a loaded machine.
STARTUP_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_serve_registry_serves_until_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("tunix_rt.registry.server", exc_type=ModuleNotFoundError)
    port = _free_port()
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "tunix_rt.client.cli", "serve", "registry"]
    args = ["--port", str(port), "--data-dir", str(data_dir)]
    failure = ""
    with subprocess.Popen(
        [*command, *args], env=os.environ.copy(), stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            with RegistryClient.connect(f"127.0.0.1:{port}") as registry:
                # wait_for_ready: queue the call until the server listens, instead of failing.
                response: pb.ListDatasetsResponse = registry.stub.ListDatasets(
                    pb.ListDatasetsRequest(), timeout=STARTUP_TIMEOUT_S, wait_for_ready=True
                )
                assert list(response.datasets) == []
        except grpc.RpcError as error:
            failure = describe_rpc_error(error)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=STARTUP_TIMEOUT_S)
    assert not failure, f"{failure}\n{stderr}"
    assert process.returncode == 0, stderr
    assert data_dir.is_dir()
