"""Bearer-token auth: every RPC but health needs the token; rejections are UNAUTHENTICATED."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import RunningServer

from . import probe
from .conftest import StartServer

TOKEN = "s3cret-token"


@pytest.fixture
def server(serve: StartServer) -> RunningServer:
    return serve(ServerConfig(port=0, auth_token=TOKEN))


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize("kind", probe.KINDS)
def test_right_token_is_let_through(channel: grpc.Channel, kind: str) -> None:
    assert probe.call(channel, kind, b"ok", metadata=bearer(TOKEN), timeout=10)[-1] == b"ok"


@pytest.mark.parametrize("kind", probe.KINDS)
@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "missing bearer token (authorization metadata)"),
        (bearer("wrong-token"), "invalid bearer token"),
        (bearer(TOKEN + "x"), "invalid bearer token"),
        ([("authorization", f"Basic {TOKEN}")], "authorization metadata must be 'Bearer <token>'"),
        ([("authorization", TOKEN)], "authorization metadata must be 'Bearer <token>'"),
    ],
)
def test_missing_or_wrong_token_is_unauthenticated(
    channel: grpc.Channel, kind: str, metadata: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        probe.call(channel, kind, b"ok", metadata=metadata, timeout=10)
    error = caught.value
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == message
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "UNAUTHENTICATED"


def test_scheme_is_case_insensitive(channel: grpc.Channel) -> None:
    metadata = [("authorization", f"bearer {TOKEN}")]
    assert probe.call(channel, "UnaryUnary", b"ok", metadata=metadata, timeout=10) == [b"ok"]


def test_health_needs_no_token(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=probe.SERVICE), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_needs_the_token(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        ProtoReflectionDescriptorDatabase(channel).get_services()
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_token_as_call_credentials_over_local_channel(server: RunningServer) -> None:
    # What a real client does: attach the token as call credentials (gRPC sends those only over
    # a secure channel; local credentials count as secure for loopback).
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), grpc.access_token_call_credentials(TOKEN)
    )
    with grpc.secure_channel(server.address, credentials) as channel:
        assert probe.call(channel, "UnaryUnary", b"ok", timeout=10) == [b"ok"]
