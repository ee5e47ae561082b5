"""The Prometheus endpoint: RPC counts per method and code, latencies, one registry per server."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import RunningServer

from . import probe
from .conftest import LoopThread, StartServer

TOKEN = "s3cret-token"


def scrape(
    server: RunningServer, host: str = "127.0.0.1", token: str | None = None
) -> list[Sample]:
    assert server.metrics_port is not None
    request = urllib.request.Request(f"http://{host}:{server.metrics_port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def other_address() -> str | None:
    """An address of this machine that is not loopback, or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        try:
            # UDP connect sends nothing; it only picks the interface a packet would leave by.
            probe_socket.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe_socket.getsockname()[0]
    return None if address.startswith("127.") else address


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(matching) == 1, (name, labels, matching)
    return matching[0]


def test_calls_are_counted_by_method_and_code(serve: StartServer) -> None:
    server = serve(ServerConfig(port=0, metrics_port=0), service_name="probe")
    with grpc.insecure_channel(server.address) as channel:
        for _ in range(3):
            probe.call(channel, "UnaryUnary", b"ok", timeout=10)
        for command in (b"invalid", b"boom"):
            with pytest.raises(grpc.RpcError):
                probe.call(channel, "UnaryStream", command, timeout=10)
    samples = scrape(server)
    unary, stream = probe.method("UnaryUnary"), probe.method("UnaryStream")
    assert value(samples, "tunix_rt_rpc_total", service="probe", method=unary, code="OK") == 3
    assert value(samples, "tunix_rt_rpc_total", method=stream, code="INVALID_ARGUMENT") == 1
    assert value(samples, "tunix_rt_rpc_total", method=stream, code="INTERNAL") == 1
    assert value(samples, "tunix_rt_rpc_duration_seconds_count", method=unary) == 3
    assert value(samples, "tunix_rt_rpc_duration_seconds_count", method=stream) == 2
    assert value(samples, "tunix_rt_rpc_duration_seconds_bucket", method=unary, le="+Inf") == 3
    # The process collector rides along on the server's own registry.
    assert any(s.name == "process_cpu_seconds_total" for s in samples)


def test_servers_in_one_process_keep_separate_metrics(serve: StartServer) -> None:
    first = serve(ServerConfig(port=0, metrics_port=0), service_name="first")
    second = serve(ServerConfig(port=0, metrics_port=0), service_name="second")
    with grpc.insecure_channel(first.address) as channel:
        probe.call(channel, "UnaryUnary", b"ok", timeout=10)
    ok = {"method": probe.method("UnaryUnary"), "code": "OK"}
    assert value(scrape(first), "tunix_rt_rpc_total", service="first", **ok) == 1
    assert not [s for s in scrape(second) if s.name == "tunix_rt_rpc_total"]


def test_metrics_disabled_by_default(serve: StartServer) -> None:
    assert serve(ServerConfig(port=0)).metrics_port is None


def test_stop_releases_the_metrics_port(serve: StartServer, loop_thread: LoopThread) -> None:
    server = serve(ServerConfig(port=0, metrics_port=0))
    scrape(server)
    loop_thread.run(server.stop(0))
    with pytest.raises(OSError):
        scrape(server)


def test_token_keeps_metrics_on_loopback_by_default(serve: StartServer) -> None:
    server = serve(ServerConfig(host="0.0.0.0", port=0, metrics_port=0, auth_token=TOKEN))
    assert server.config.metrics_bind_host == "127.0.0.1"
    assert scrape(server)  # loopback answers without the token
    address = other_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to dial")
    with pytest.raises(OSError):
        scrape(server, host=address)


def test_without_a_token_metrics_follow_the_grpc_host(serve: StartServer) -> None:
    server = serve(ServerConfig(host="0.0.0.0", port=0, metrics_port=0))
    assert server.config.metrics_bind_host == "0.0.0.0"
    address = other_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to dial")
    assert scrape(server, host=address)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"]
)
def test_metrics_auth_requires_the_token(serve: StartServer, authorization: str | None) -> None:
    config = ServerConfig(port=0, metrics_port=0, auth_token=TOKEN, metrics_auth=True)
    server = serve(config)
    request = urllib.request.Request(f"http://127.0.0.1:{server.metrics_port}/metrics")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == "Bearer"
    assert b"tunix_rt" not in caught.value.read()
    caught.value.close()
    with grpc.insecure_channel(server.address) as channel:
        probe.call(channel, "UnaryUnary", b"ok", metadata=[("authorization", f"Bearer {TOKEN}")])
    ok = {"method": probe.method("UnaryUnary"), "code": "OK"}
    assert value(scrape(server, token=TOKEN), "tunix_rt_rpc_total", **ok) == 1


def test_metrics_auth_listens_where_grpc_does(serve: StartServer) -> None:
    config = ServerConfig(
        host="0.0.0.0", port=0, metrics_port=0, auth_token=TOKEN, metrics_auth=True
    )
    server = serve(config)
    assert server.config.metrics_bind_host == "0.0.0.0"
    address = other_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to dial")
    assert scrape(server, host=address, token=TOKEN)


def test_explicit_metrics_host_wins(serve: StartServer) -> None:
    config = ServerConfig(
        host="127.0.0.1", port=0, metrics_port=0, metrics_host="0.0.0.0", auth_token=TOKEN
    )
    assert serve(config).config.metrics_bind_host == "0.0.0.0"
