"""start_server end to end: health, reflection (our client and grpcurl), message limits, ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tunix_rt.common.config import ServerConfig
from tunix_rt.common.reflection import MethodAwarePool
from tunix_rt.common.server import RunningServer, ServiceRegistration
from tunix_rt.v1 import registry_service_pb2_grpc

from . import probe
from .conftest import LoopThread, StartServer

REGISTRY_SERVICE = "tunix_rt.v1.RegistryService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def unimplemented_registry() -> ServiceRegistration:
    """The generated base servicer: every method unimplemented, but a real descriptor."""
    servicer = registry_service_pb2_grpc.RegistryServiceServicer()
    # Generated gRPC code has no type stubs; Any keeps the strict type check quiet either way.
    add_servicer: Any = registry_service_pb2_grpc.add_RegistryServiceServicer_to_server
    return ServiceRegistration(REGISTRY_SERVICE, lambda server: add_servicer(servicer, server))


@pytest.fixture
def server(serve: StartServer) -> RunningServer:
    return serve(registrations=[probe.registration(), unimplemented_registry()])


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def check(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    status: int = response.status
    return status


@pytest.mark.parametrize("service", ["", probe.SERVICE, REGISTRY_SERVICE])
def test_health_is_serving_for_server_and_each_service(channel: grpc.Channel, service: str) -> None:
    assert check(channel, service) == SERVING


def test_health_of_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        check(channel, "tunix_rt.v1.NoSuchService")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_set_serving_changes_one_service(server: RunningServer, loop_thread: LoopThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        loop_thread.run(server.set_serving(False, REGISTRY_SERVICE))
        assert check(channel, REGISTRY_SERVICE) == NOT_SERVING
        assert check(channel, "") == SERVING
        loop_thread.run(server.set_serving(True, REGISTRY_SERVICE))
        assert check(channel, REGISTRY_SERVICE) == SERVING


def test_stop_tells_health_watchers_not_serving(
    server: RunningServer, loop_thread: LoopThread
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        assert next(watch).status == SERVING
        stopping = loop_thread.run_soon(server.stop(grace=5))
        assert next(watch).status == NOT_SERVING
        watch.cancel()
        stopping.result(timeout=30)


def test_reflection_lists_and_describes_services(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == {
        probe.SERVICE,
        REGISTRY_SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    service = DescriptorPool(database).FindServiceByName(REGISTRY_SERVICE)
    assert "GetTrace" in {m.name for m in service.methods}
    assert service.methods_by_name["GetTrace"].input_type.full_name == "tunix_rt.v1.GetTraceRequest"


def test_method_symbols_resolve_to_their_service_file() -> None:
    pool = MethodAwarePool()
    file = pool.FindFileContainingSymbol(f"{REGISTRY_SERVICE}.GetTrace")
    assert file.name == "tunix_rt/v1/registry_service.proto"
    assert pool.FindFileContainingSymbol("tunix_rt.v1.GetTraceRequest") is file
    for unknown in (f"{REGISTRY_SERVICE}.NoSuchMethod", "tunix_rt.v1.Nope.GetTrace", "nope"):
        with pytest.raises(KeyError):
            pool.FindFileContainingSymbol(unknown)


def test_generated_base_servicer_answers_unimplemented(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(f"/{REGISTRY_SERVICE}/GetTrace")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def grpcurl(*args: str) -> str:
    # The dev extra installs grpcurl into the virtualenv, which need not be on PATH.
    beside_python = Path(sys.executable).with_name("grpcurl")
    binary = str(beside_python) if beside_python.exists() else shutil.which("grpcurl")
    if binary is None:
        pytest.skip("grpcurl is not installed")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 and "download" in done.stderr.lower():
        pytest.skip(f"grpcurl binary unavailable: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grpcurl_lists_and_describes(server: RunningServer) -> None:
    listed = grpcurl("-plaintext", server.address, "list").split()
    assert REGISTRY_SERVICE in listed
    assert "grpc.health.v1.Health" in listed
    described = grpcurl("-plaintext", server.address, "describe", f"{REGISTRY_SERVICE}.GetTrace")
    assert "rpc GetTrace ( .tunix_rt.v1.GetTraceRequest )" in described


def test_messages_over_the_limit_are_refused(serve: StartServer) -> None:
    server = serve(ServerConfig(port=0, max_message_bytes=1024))
    with grpc.insecure_channel(server.address) as channel:
        assert probe.call(channel, "UnaryUnary", b"x" * 1000, timeout=10) == [b"x" * 1000]
        with pytest.raises(grpc.RpcError) as caught:
            probe.call(channel, "UnaryUnary", b"x" * 2048, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_busy_port_fails_loudly(serve: StartServer, server: RunningServer) -> None:
    with pytest.raises(OSError, match="cannot listen"):
        serve(ServerConfig(port=server.port))


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("host", "address_host"), [("0.0.0.0", "127.0.0.1"), ("::", "[::1]")])
def test_wildcard_host_gives_a_dialable_address(
    serve: StartServer, host: str, address_host: str
) -> None:
    if ":" in host and not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    server = serve(ServerConfig(host=host, port=0))
    assert server.address == f"{address_host}:{server.port}"
    with grpc.insecure_channel(server.address) as channel:
        assert check(channel, "") == SERVING
