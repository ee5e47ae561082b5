"""Outgoing calls between services (common.outgoing): the token and TLS reach real servers over
sync and aio channels, settings come from the CLI's environment variables and pass to a child
process, safe methods only are retried, and a failed call becomes the right domain error."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tunix_rt.common import outgoing
from tunix_rt.common.config import ConfigError, ServerConfig
from tunix_rt.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TunixError,
    Unavailable,
)
from tunix_rt.common.outgoing import OutgoingSettings

from . import probe
from .certificates import self_signed
from .conftest import LoopThread, StartServer

TOKEN = "outgoing-token"


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("outgoing-tls"))


def tls_server(serve: StartServer, cert_files: tuple[Path, Path]) -> str:
    cert, key = cert_files
    config = ServerConfig(port=0, auth_token=TOKEN, tls_cert_file=str(cert), tls_key_file=str(key))
    return serve(config).address


def code_of(channel: grpc.Channel, kind: str = "UnaryUnary", **kwargs: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        probe.call(channel, kind, b"ok", timeout=10, **kwargs)
    code: grpc.StatusCode = caught.value.code()
    return code


@pytest.mark.parametrize("kind", probe.KINDS)
def test_the_token_reaches_a_plaintext_server(serve: StartServer, kind: str) -> None:
    address = serve(ServerConfig(port=0, auth_token=TOKEN)).address
    with outgoing.sync_channel(OutgoingSettings(address, token=TOKEN)) as channel:
        assert probe.call(channel, kind, b"ok", timeout=10)[-1] == b"ok"
    with outgoing.sync_channel(OutgoingSettings(address)) as channel:
        assert code_of(channel, kind) == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_the_caller_passes_on_wins(serve: StartServer) -> None:
    """The inference service passes its caller's token on to the registry; only one is sent."""
    address = serve(ServerConfig(port=0, auth_token=TOKEN)).address
    passed_on = [("authorization", "Bearer someone-else")]
    with outgoing.sync_channel(OutgoingSettings(address, token=TOKEN)) as channel:
        assert code_of(channel, metadata=passed_on) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("kind", probe.KINDS)
def test_tls_with_the_token_as_call_credentials(
    serve: StartServer, cert_files: tuple[Path, Path], kind: str
) -> None:
    address = tls_server(serve, cert_files)
    secure = OutgoingSettings(address, token=TOKEN, tls_ca=cert_files[0])
    with outgoing.sync_channel(secure) as channel:
        assert probe.call(channel, kind, b"ok", timeout=10)[-1] == b"ok"
    with outgoing.sync_channel(OutgoingSettings(address, tls_ca=cert_files[0])) as channel:
        assert code_of(channel, kind) == grpc.StatusCode.UNAUTHENTICATED
    # The training service's failure before this module: plaintext against a TLS registry.
    with outgoing.sync_channel(OutgoingSettings(address, token=TOKEN)) as channel:
        assert code_of(channel, kind) == grpc.StatusCode.UNAVAILABLE


def test_aio_channels_carry_the_token_with_and_without_tls(
    serve: StartServer, loop_thread: LoopThread, cert_files: tuple[Path, Path]
) -> None:
    plain = serve(ServerConfig(port=0, auth_token=TOKEN)).address
    secure = tls_server(serve, cert_files)

    async def echo(settings: OutgoingSettings) -> bytes:
        async with outgoing.aio_channel(settings) as channel:
            answer: bytes = await channel.unary_unary(probe.method("UnaryUnary"))(b"ok", timeout=10)
            return answer

    assert loop_thread.run(echo(OutgoingSettings(plain, token=TOKEN))) == b"ok"
    tls = OutgoingSettings(secure, token=TOKEN, tls_ca=cert_files[0])
    assert loop_thread.run(echo(tls)) == b"ok"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        loop_thread.run(echo(OutgoingSettings(plain)))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_settings_fall_back_to_the_clis_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    monkeypatch.setenv("TUNIX_RT_AUTH_TOKEN", "from-env")
    monkeypatch.setenv("TUNIX_RT_TLS_CA", str(ca))
    settings = OutgoingSettings.of("registry:50051")
    assert (settings.token, settings.tls_ca) == ("from-env", ca)
    assert OutgoingSettings.of("r:1", token="given").token == "given"
    assert "from-env" not in repr(settings)
    server = ServerConfig.from_env("training", env={"TUNIX_RT_AUTH_TOKEN": "own"})
    assert OutgoingSettings.of_server("r:1", server).token == "own"
    # A child process started with `environment()` dials exactly as its parent, even where the
    # inherited environment says otherwise.
    plain = OutgoingSettings("r:1")
    for name, value in plain.environment().items():
        monkeypatch.setenv(name, value)
    assert OutgoingSettings.of("r:1") == plain
    assert settings.to("inference:50053") == OutgoingSettings("inference:50053", "from-env", ca)


def test_the_tls_ca_variable_is_part_of_the_server_config() -> None:
    config = ServerConfig.from_env("training", env={"TUNIX_RT_TLS_CA": "/etc/tunix/ca.pem"})
    assert config.tls_ca_file == "/etc/tunix/ca.pem"
    assert ServerConfig.from_env("training", env={"TUNIX_RT_TLS_CA": ""}).tls_ca_file is None


def test_an_unreadable_ca_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=r"cannot read TLS CA file .*missing\.pem"):
        outgoing.sync_channel(OutgoingSettings("127.0.0.1:1", tls_ca=missing))


def test_only_reads_and_creates_with_a_request_id_are_retried() -> None:
    registry = set(outgoing.retried(outgoing.REGISTRY))
    assert {"GetDataset", "ListRuns", "ExportDataset", "ResolveModelVersion"} <= registry
    assert {"DownloadArtifact", "CreateModelVersion", "CreateEvaluation", "CreateRun"} <= registry
    unsafe = {"TransitionRun", "SetModelAlias", "DeleteDataset", "AppendRunEvents"}
    assert not registry & unsafe
    assert "Evaluate" in outgoing.retried(outgoing.INFERENCE)
    assert "Generate" not in outgoing.retried(outgoing.INFERENCE)


def failed_call(serve: StartServer, command: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(serve().address) as channel, pytest.raises(grpc.RpcError) as caught:
        probe.call(channel, "UnaryUnary", command, timeout=10)
    return caught.value


def test_a_refused_request_is_blamed_on_the_callers_field(serve: StartServer) -> None:
    err = failed_call(serve, b"invalid")
    blamed = outgoing.registry_error(err, "datasets/d", field="source.dataset.dataset")
    assert isinstance(blamed, InvalidArgument)
    assert [v.field for v in blamed.violations] == ["source.dataset.dataset"]
    assert "'datasets/d'" in blamed.message and "must not be empty" in blamed.message
    plain = outgoing.registry_error(err, "runs/r")
    assert isinstance(plain, InvalidArgument) and not plain.violations


def test_not_found_names_the_kind_of_resource(serve: StartServer) -> None:
    err = failed_call(serve, b"not_found")
    named = outgoing.registry_error(err, "tiny@candidate", "model", "model")
    assert isinstance(named, NotFound) and named.resource.resource_type == "model"
    assert named.message.startswith("model 'tiny@candidate' not found: ")
    # Without a kind the registry's own message, which names the resource, is the message.
    bare = outgoing.registry_error(err, "models/m1")
    assert isinstance(bare, NotFound) and bare.message == "model 'models/m1' not found"


@pytest.mark.parametrize(
    ("command", "domain"),
    [(b"exists", AlreadyExists), (b"precondition", FailedPrecondition), (b"abort", Unavailable)],
)
def test_answers_keep_their_code_and_anything_else_is_unavailable(
    serve: StartServer, command: bytes, domain: type[TunixError]
) -> None:
    error = outgoing.registry_error(failed_call(serve, command), "x")
    assert type(error) is domain
    if domain is Unavailable:
        assert error.message == "registry call failed: PERMISSION_DENIED: custom abort"


def test_registry_call_raises_the_domain_error(serve: StartServer) -> None:
    with grpc.insecure_channel(serve().address) as channel:
        method = channel.unary_unary(probe.method("UnaryUnary"))
        assert outgoing.registry_call(lambda: method(b"ok", timeout=10), "x") == b"ok"
        with pytest.raises(NotFound):
            outgoing.registry_call(lambda: method(b"not_found", timeout=10), "x", kind="model")
