"""Channels: address resolution, the retry service config, retries on the wire, auth, deadlines."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.common.certificates import self_signed
from tunix_rt.client.channel import (
    DEFAULT_REGISTRY_ADDRESS,
    MAX_MESSAGE_BYTES,
    REGISTRY_ENV,
    TOKEN_ENV,
    ChannelSettings,
    RetryPolicy,
    build_aio_channel,
    build_channel,
    idempotent_methods,
    resolve_address,
    retry_service_config,
)
from tunix_rt.client.registry import REGISTRY_IDEMPOTENT, REGISTRY_SERVICE, RegistryClient
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc, trace_pb2

from .fake_transport import fail_first, fake_registry

SERVICE = pb.DESCRIPTOR.services_by_name["RegistryService"]
# Retry quickly in tests; the policy's shape is what is under test, not its pauses.
FAST_RETRY = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05)
TRACE = pb.GetTraceResponse(trace=trace_pb2.Trace(name="traces/abc", prompt="p"))


def _client(address: str, **kwargs: Any) -> RegistryClient:
    settings = ChannelSettings(address=address, retry=FAST_RETRY, **kwargs)
    return RegistryClient(build_channel(settings, {REGISTRY_SERVICE: REGISTRY_IDEMPOTENT}))


@pytest.mark.parametrize(
    ("given", "env", "expected"),
    [
        ("10.0.0.5:7000", "ignored:1", "10.0.0.5:7000"),
        (None, "registry.internal:9000", "registry.internal:9000"),
        (None, None, DEFAULT_REGISTRY_ADDRESS),
        ("registry.internal", None, "registry.internal:50051"),
        ("grpc://localhost:6000", None, "localhost:6000"),
        ("[::1]", None, "[::1]:50051"),
        ("[::1]:6000", None, "[::1]:6000"),
        ("::1", None, "[::1]:50051"),
        ("unix:/tmp/registry.sock", None, "unix:/tmp/registry.sock"),
    ],
)
def test_address_comes_from_flag_then_env_then_default(
    monkeypatch: pytest.MonkeyPatch, given: str | None, env: str | None, expected: str
) -> None:
    if env is None:
        monkeypatch.delenv(REGISTRY_ENV, raising=False)
    else:
        monkeypatch.setenv(REGISTRY_ENV, env)
    assert resolve_address(given, REGISTRY_ENV, DEFAULT_REGISTRY_ADDRESS) == expected


def test_settings_take_token_and_ca_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    ca = tmp_path / "ca.pem"
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    monkeypatch.setenv("TUNIX_RT_TLS_CA", str(ca))
    settings = ChannelSettings.from_env("host:1")
    assert (settings.token, settings.tls_ca, settings.secure) == ("s3cret", ca, True)
    explicit = ChannelSettings.from_env("host:1", token="other")
    assert explicit.token == "other"


def test_idempotent_methods_are_reads_and_creates_with_request_id() -> None:
    reads = {"GetTrace", "ListTraces", "ExportDataset", "DownloadArtifact", "ResolveModelVersion"}
    creates = {"CreateTrace", "BatchCreateTraces", "CreateDataset", "CreateModelVersion"}
    extras = {"ImportTraces", "UploadArtifact", "AppendRunEvents", "CreateCheckpoint"}
    assert reads | creates | extras <= REGISTRY_IDEMPOTENT
    never = {"DeleteTrace", "DeleteDataset", "TransitionRun", "SetModelAlias", "DeleteModelAlias"}
    assert not never & REGISTRY_IDEMPOTENT
    # Every listed name is a real method, so a typo cannot silently disable retries.
    assert {m.name for m in SERVICE.methods} >= REGISTRY_IDEMPOTENT
    with pytest.raises(ValueError, match="NoSuchMethod"):
        idempotent_methods(SERVICE, extra={"NoSuchMethod"})


def test_service_config_retries_only_idempotent_methods_on_unavailable() -> None:
    options = dict(ChannelSettings(address="h:1").options({REGISTRY_SERVICE: REGISTRY_IDEMPOTENT}))
    assert options["grpc.max_send_message_length"] == MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    assert options["grpc.max_receive_message_length"] == MAX_MESSAGE_BYTES
    config = json.loads(options["grpc.service_config"])
    (method_config,) = config["methodConfig"]
    assert method_config["retryPolicy"] == {
        "maxAttempts": 5,
        "initialBackoff": "0.2s",
        "maxBackoff": "5.0s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    listed = {(n["service"], n["method"]) for n in method_config["name"]}
    assert listed == {(REGISTRY_SERVICE, m) for m in REGISTRY_IDEMPOTENT}
    assert retry_service_config({})["methodConfig"] == []


def test_idempotent_call_is_retried_through_unavailable() -> None:
    behaviours = {"GetTrace": fail_first(2, grpc.StatusCode.UNAVAILABLE, TRACE)}
    with fake_registry(behaviours) as (address, transport), _client(address) as client:
        assert client.get_trace("abc").name == "traces/abc"
    assert transport.attempts["GetTrace"] == 3


def test_retries_stop_after_max_attempts() -> None:
    behaviours = {"GetTrace": fail_first(99, grpc.StatusCode.UNAVAILABLE, TRACE)}
    with fake_registry(behaviours) as (address, transport), _client(address) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.get_trace("abc")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert transport.attempts["GetTrace"] == FAST_RETRY.max_attempts


def test_non_idempotent_call_is_sent_once() -> None:
    behaviours = {
        "DeleteTrace": fail_first(1, grpc.StatusCode.UNAVAILABLE, pb.DeleteTraceResponse())
    }
    with fake_registry(behaviours) as (address, transport), _client(address) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.delete_trace("abc")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert transport.attempts["DeleteTrace"] == 1


def test_other_codes_are_not_retried() -> None:
    behaviours = {"GetTrace": fail_first(1, grpc.StatusCode.INTERNAL, TRACE)}
    with (
        fake_registry(behaviours) as (address, transport),
        _client(address) as client,
        pytest.raises(grpc.RpcError),
    ):
        client.get_trace("abc")
    assert transport.attempts["GetTrace"] == 1


def test_creates_carry_a_fresh_request_id() -> None:
    seen: list[str] = []

    def create(request: Any, context: grpc.ServicerContext, attempt: int) -> Any:
        seen.append(request.request_id)
        if attempt == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "lost")
        return pb.CreateTraceResponse(trace=request.trace)

    with fake_registry({"CreateTrace": create}) as (address, _), _client(address) as client:
        client.create_trace(trace_pb2.Trace(prompt="p"))
        client.create_trace(trace_pb2.Trace(prompt="p"))
    # The retry repeats the first call's id; the second call has its own.
    assert len(seen) == 3 and seen[0] == seen[1] != seen[2] and len(seen[0]) == 32


def test_channel_fills_request_ids_for_raw_stub_calls() -> None:
    seen: list[str] = []

    def create(request: Any, context: grpc.ServicerContext, attempt: int) -> Any:
        seen.append(request.request_id)
        if attempt == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "lost")
        return pb.CreateModelResponse()

    request = pb.CreateModelRequest(model_id="m")
    with fake_registry({"CreateModel": create}) as (address, _), _client(address) as client:
        client.stub.CreateModel(request, timeout=5)
    # Filled once, before gRPC's retries, so both attempts carry the same id.
    assert len(seen) == 2 and seen[0] == seen[1] and len(seen[0]) == 32
    # The caller's message is left as it was.
    assert request.request_id == ""


def test_bearer_token_is_sent_on_an_insecure_channel() -> None:
    behaviours = {"GetTrace": fail_first(0, grpc.StatusCode.OK, TRACE)}
    with fake_registry(behaviours) as (address, transport):
        with _client(address, token="t0k3n") as client:
            client.get_trace("abc")
        with _client(address) as anonymous:
            anonymous.get_trace("abc")
    with_token, without = transport.metadata["GetTrace"]
    assert with_token["authorization"] == "Bearer t0k3n"
    assert "authorization" not in without


def test_bearer_token_is_sent_on_an_aio_channel() -> None:
    behaviours = {"GetTrace": fail_first(0, grpc.StatusCode.OK, TRACE)}

    async def call(address: str) -> str:
        settings = ChannelSettings(address=address, token="aio-token")
        async with build_aio_channel(settings, {REGISTRY_SERVICE: REGISTRY_IDEMPOTENT}) as channel:
            stub = registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
            response: pb.GetTraceResponse = await stub.GetTrace(
                pb.GetTraceRequest(name="traces/abc"), timeout=5
            )
            return response.trace.name

    with fake_registry(behaviours) as (address, transport):
        assert asyncio.run(call(address)) == "traces/abc"
    assert transport.metadata["GetTrace"][0]["authorization"] == "Bearer aio-token"


def test_unary_calls_get_the_default_deadline() -> None:
    def slow(request: Any, context: grpc.ServicerContext, attempt: int) -> Any:
        time.sleep(1.0)
        return TRACE

    with fake_registry({"GetTrace": slow}) as (address, _), _client(address) as client:
        client.timeout = 0.2
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            client.get_trace("abc")
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 0.9


def test_tls_settings_make_a_channel_that_trusts_only_its_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "server")
    other_ca, _ = self_signed(tmp_path / "other")
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    behaviours = {"GetTrace": fail_first(0, grpc.StatusCode.OK, TRACE)}
    with fake_registry(behaviours, credentials) as (address, transport):
        with _client(address, tls_ca=cert, token="t0k3n") as client:
            client.timeout = 10
            assert client.get_trace("abc") == TRACE.trace
        with _client(address, tls_ca=other_ca) as untrusting:
            untrusting.timeout = 10
            with pytest.raises(grpc.RpcError) as caught:
                untrusting.get_trace("abc")
    # The handshake fails before any call reaches the server.
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert transport.attempts["GetTrace"] == 1
    assert transport.metadata["GetTrace"][0]["authorization"] == "Bearer t0k3n"
