"""TLS from cert files: a self-signed certificate made with the openssl CLI for each test module."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tunix_rt.common.config import ConfigError, ServerConfig

from . import probe
from .certificates import self_signed
from .conftest import StartServer

TOKEN = "tls-token"


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) PEM files for localhost / 127.0.0.1, valid for a day."""
    return self_signed(tmp_path_factory.mktemp("tls"))


def tls_config(cert_files: tuple[Path, Path], **overrides: object) -> ServerConfig:
    cert, key = cert_files
    return ServerConfig.from_env(
        "probe", env={}, tls_cert_file=str(cert), tls_key_file=str(key), **overrides
    )


def test_tls_channel_trusting_the_cert_works(
    serve: StartServer, cert_files: tuple[Path, Path]
) -> None:
    server = serve(tls_config(cert_files))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert_files[0].read_bytes())
    with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
        assert probe.call(channel, "UnaryUnary", b"ok", timeout=10) == [b"ok"]
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def test_tls_with_bearer_token(serve: StartServer, cert_files: tuple[Path, Path]) -> None:
    server = serve(tls_config(cert_files, auth_token=TOKEN))
    ssl = grpc.ssl_channel_credentials(root_certificates=cert_files[0].read_bytes())
    with grpc.secure_channel(f"localhost:{server.port}", ssl) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            probe.call(channel, "UnaryUnary", b"ok", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with_token = grpc.composite_channel_credentials(ssl, grpc.access_token_call_credentials(TOKEN))
    with grpc.secure_channel(f"localhost:{server.port}", with_token) as channel:
        assert probe.call(channel, "UnaryUnary", b"ok", timeout=10) == [b"ok"]


def test_plaintext_client_cannot_talk_to_tls_server(
    serve: StartServer, cert_files: tuple[Path, Path]
) -> None:
    server = serve(tls_config(cert_files))
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as caught:
        probe.call(channel, "UnaryUnary", b"ok", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_unreadable_cert_file_is_a_config_error(serve: StartServer, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"cannot read TLS key file .*missing\.pem"):
        serve(ServerConfig(port=0, tls_cert_file=missing, tls_key_file=missing))
