"""What current gRPC tools expect of every tunix-rt server, through the tools themselves:
`grpc.reflection.v1` for `buf curl` (against a real registry), v1alpha still for grpcurl 1.8, and
`grpc.health.v1.Health/List` through a generated stub; health needs no token, reflection does;
`buf curl --schema` with the shipped descriptor set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import HealthServicer, RunningServer
from tunix_rt.registry.server import RunningRegistry, start_registry

from . import probe
from .conftest import LoopThread, StartServer
from .test_bootstrap import REGISTRY_SERVICE, grpcurl, unimplemented_registry
from .test_descriptor_set import DESCRIPTOR_SET

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
TOKEN = "s3cret-token"


def buf(*args: str) -> subprocess.CompletedProcess[str]:
    # buf-bin (a dev dependency) installs buf into the virtualenv, which need not be on PATH.
    beside_python = Path(sys.executable).with_name("buf")
    binary = str(beside_python) if beside_python.exists() else shutil.which("buf")
    if binary is None:
        pytest.skip("buf is not installed")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def registry(loop_thread: LoopThread, tmp_path: Path) -> Iterator[RunningRegistry]:
    running = loop_thread.run(start_registry(data_dir=tmp_path / "registry"))
    yield running
    loop_thread.run(running.stop(0))


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    """`buf curl` speaking gRPC over plaintext HTTP/2, as one would call a local server."""
    return buf("curl", "--protocol", "grpc", "--http2-prior-knowledge", *args)


def call_v1(address: str, method: str, data: str) -> subprocess.CompletedProcess[str]:
    """Call `method` with the schema from reflection v1 only (no fallback to v1alpha)."""
    return buf_curl("--reflect-protocol", "grpc-v1", "-d", data, f"http://{address}/{method}")


def test_buf_curl_reflects_v1_and_calls_a_real_registry(registry: RunningRegistry) -> None:
    trace = {
        "traceVersion": "1.0",
        "prompt": "What is 2 + 3?",
        "steps": [{"i": 0, "type": "calculation", "content": "2 + 3 = 5"}],
        "finalAnswer": "5",
    }
    created = call_v1(
        registry.address, f"{REGISTRY_SERVICE}/CreateTrace", json.dumps({"trace": trace})
    )
    assert created.returncode == 0, created.stderr
    name = json.loads(created.stdout)["trace"]["name"]
    listed = call_v1(registry.address, f"{REGISTRY_SERVICE}/ListTraces", "{}")
    assert listed.returncode == 0, listed.stderr
    traces = json.loads(listed.stdout)["traces"]
    assert [(t["name"], t["prompt"], t["finalAnswer"]) for t in traces] == [
        (name, "What is 2 + 3?", "5")
    ]
    # The shipped descriptor set alone is schema enough, without reflection.
    with_set = buf_curl(
        "--schema",
        str(DESCRIPTOR_SET),
        "-d",
        "{}",
        f"http://{registry.address}/{REGISTRY_SERVICE}/ListTraces",
    )
    assert with_set.returncode == 0, with_set.stderr
    assert json.loads(with_set.stdout)["traces"] == traces


def test_buf_curl_lists_services_over_v1(serve: StartServer) -> None:
    server = serve(registrations=[probe.registration(), unimplemented_registry()])
    done = buf_curl("--reflect-protocol", "grpc-v1", "--list-services", f"http://{server.address}")
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {
        probe.SERVICE,
        REGISTRY_SERVICE,
        "grpc.health.v1.Health",
        REFLECTION_V1,
        REFLECTION_V1ALPHA,
    }


def test_grpcurl_still_lists_and_describes_both_reflection_services(serve: StartServer) -> None:
    server = serve(registrations=[probe.registration(), unimplemented_registry()])
    listed = grpcurl("-plaintext", server.address, "list").split()
    assert {REGISTRY_SERVICE, "grpc.health.v1.Health", REFLECTION_V1, REFLECTION_V1ALPHA} <= set(
        listed
    )
    described = grpcurl("-plaintext", server.address, "describe", REFLECTION_V1)
    assert (
        "rpc ServerReflectionInfo ( stream .grpc.reflection.v1.ServerReflectionRequest )"
        in described
    )


def health_list(channel: grpc.Channel) -> dict[str, int]:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.List(health_pb2.HealthListRequest(), timeout=10)
    return {name: status.status for name, status in response.statuses.items()}


def test_health_list_has_every_service(serve: StartServer, loop_thread: LoopThread) -> None:
    server = serve(registrations=[probe.registration(), unimplemented_registry()])
    with grpc.insecure_channel(server.address) as channel:
        assert health_list(channel) == {
            "": SERVING,
            probe.SERVICE: SERVING,
            REGISTRY_SERVICE: SERVING,
        }
        loop_thread.run(server.set_serving(False, REGISTRY_SERVICE))
        assert health_list(channel)[REGISTRY_SERVICE] == NOT_SERVING
        loop_thread.run(server.stop(grace=1))
    with pytest.raises(grpc.RpcError), grpc.insecure_channel(server.address) as channel:
        health_list(channel)


def test_health_list_after_shutdown_began_is_not_serving(loop_thread: LoopThread) -> None:
    async def statuses() -> dict[str, int]:
        health = HealthServicer()
        await health.set(probe.SERVICE, SERVING)
        await health.enter_graceful_shutdown()
        # Once shutting down, setters no longer change what List reports (nor what Check says).
        await health.set(probe.SERVICE, SERVING)
        # List reads nothing of the call, so no context is needed outside a server.
        response = await health.List(health_pb2.HealthListRequest(), cast(Any, None))
        return {name: status.status for name, status in response.statuses.items()}

    assert loop_thread.run(statuses()) == {"": NOT_SERVING, probe.SERVICE: NOT_SERVING}


@pytest.fixture
def secured(serve: StartServer) -> RunningServer:
    return serve(ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN))


def test_health_list_needs_no_token(secured: RunningServer) -> None:
    with grpc.insecure_channel(secured.address) as channel:
        assert health_list(channel) == {"": SERVING, probe.SERVICE: SERVING}


def test_reflection_v1_needs_the_token(secured: RunningServer) -> None:
    address = f"http://{secured.address}"
    refused = buf_curl("--reflect-protocol", "grpc-v1", "--list-services", address)
    # buf words an UNAUTHENTICATED status as "you are not authenticated".
    assert refused.returncode != 0
    assert "not authenticated" in refused.stderr
    allowed = buf_curl(
        "-H",
        f"authorization: Bearer {TOKEN}",
        "--reflect-header",
        "*",
        "--reflect-protocol",
        "grpc-v1",
        "--list-services",
        address,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert REFLECTION_V1 in allowed.stdout.split()
