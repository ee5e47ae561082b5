"""The Prometheus endpoint: RPC counts per method and code, latencies, one registry per server."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import RunningServer

from . import probe
from .conftest import LoopThread, StartServer


def scrape(server: RunningServer) -> list[Sample]:
    assert server.metrics_port is not None
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


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
