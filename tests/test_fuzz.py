"""Malformed requests to every RPC of the registry, training and inference services (and the Open
Inference Protocol service beside inference), through real servers on loopback: no call may end
INTERNAL or UNKNOWN, nothing may log a traceback, and every server stays healthy.

Bodies are built by `hypothesis` from each method's input descriptor as raw wire bytes, so they
can hold what a generated client never sends: numbers past their type's range (a Timestamp in the
year 10000, a negative seed, a varint of 2**64 - 1), huge strings, invalid UTF-8, wrong wire types,
unknown fields, nesting past protobuf's depth limit, truncated messages; plus plain random bytes.
Most bodies parse, holding names of what the servers hold (`NAMES`), so they reach the handlers'
validation and the code behind it. Seeded (`derandomize`) and bounded: EXAMPLES_PER_METHOD calls
per method, 15 to 25 s on a shared 2-core machine. `bench/fuzz.py` runs the same strategies for
10,000 requests and counts every status code (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.main_job import main_job_services
from tests.training.conftest import import_dataset
from tunix_rt.v1 import (
    inference_service_pb2,
    inference_service_pb2_grpc,
    oip_grpc_service_pb2,
    registry_service_pb2,
    registry_service_pb2_grpc,
    training_service_pb2,
)

# (server, the proto services it serves)
SERVED = {
    "registry": (registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],),
    "training": (training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"],),
    "inference": (
        inference_service_pb2.DESCRIPTOR.services_by_name["InferenceService"],
        oip_grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
    ),
}
METHODS: list[tuple[str, MethodDescriptor]] = [
    (server, method)
    for server, services in SERVED.items()
    for service in services
    for method in service.methods
]
EXAMPLES_PER_METHOD = 40
CALL_TIMEOUT_S = 20.0
# Responses read from a stream before the call is cancelled: the status of a bad request comes
# first, and a well-formed one that happens to match something must not stream for long.
MAX_RESPONSES = 4

# Codes that say the server, not the request, is broken.
FORBIDDEN = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})

_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_START, _WIRE_END, _WIRE_I32 = 0, 1, 2, 3, 4, 5
_FIXED64 = {
    FieldDescriptor.TYPE_DOUBLE,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_FIXED32 = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}
_ZIGZAG = {FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64}
_STRUCT_TYPES = {"google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue"}
# Where numbers break things: type bounds, Timestamp's range (0001-01-01 .. 9999-12-31), zero.
EDGE_INTEGERS = (
    0,
    1,
    -1,
    2**31 - 1,
    -(2**31),
    2**32 - 1,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    253_402_300_800,  # 10000-01-01T00:00:00Z, one second past Timestamp's maximum
    -62_135_596_801,  # one second before 0001-01-01
    1_000_000_000,  # nanos one past their maximum
    10**15,
)
# Strings a path, a name or a filter parser may trip on.
NASTY_STRINGS = (
    b"",
    b"../../../etc/passwd",
    b"/absolute",
    b"models/",
    b"models/x/versions/-1",
    b"datasets/%00",
    b"\x00",
    b"a\nb",
    b"${jndi:x}",
    b"' OR 1=1 --",
    b"{" * 2000,
    b"[" * 5000 + b"]" * 5000,
    b"9" * 5000,
    "Ünïcödé ✓".encode(),
)
# Names of what the fuzzed services hold (`seed_resources`) and references in every documented
# format, so requests get past name checks to the code behind them.
NAMES = (
    b"fuzz",
    b"models/fuzz",
    b"models/fuzz/versions/1",
    b"fuzz@latest",
    b"fuzz/1",
    b"datasets/fuzz",
    b"runs/fuzz",
    b"runs/fuzz/checkpoints/1",
    b"evalSets/fuzz",
    b"evaluations/fuzz",
    b"trainingJobs/fuzz",
    b"traces/00000000000000000000000000000000",
    b"artifacts/" + b"0" * 64,
)
MAX_DEPTH = 3
MAX_HUGE = 100_000


def varint(value: int) -> bytes:
    """`value` as a protobuf varint; negatives as their 64-bit two's complement (10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def tag(number: int, wire: int) -> bytes:
    return varint((number << 3) | wire)


def delimited(number: int, payload: bytes) -> bytes:
    return tag(number, _WIRE_LEN) + varint(len(payload)) + payload


def deep_value(depth: int) -> bytes:
    """A google.protobuf.Value nested `depth` times through list_value (field 6) → values (1)."""
    body = b""
    for _ in range(depth):
        body = delimited(6, delimited(1, body))
    return body


def deep_struct_field(type_name: str, depth: int) -> bytes:
    """The body of a Struct, ListValue or Value holding a Value nested `depth` times."""
    value = deep_value(depth)
    if type_name == "google.protobuf.Struct":
        return delimited(1, delimited(1, b"k") + delimited(2, value))  # fields: {"k": value}
    if type_name == "google.protobuf.ListValue":
        return delimited(1, value)
    return value


integers = st.one_of(
    st.integers(0, 64), st.sampled_from(EDGE_INTEGERS), st.integers(-(2**63), 2**64 - 1)
)
# Strings that are valid UTF-8, so a message holding only these parses and reaches the handler.
texts = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES),
    st.text(max_size=24).map(str.encode),
    st.sampled_from(NASTY_STRINGS),
    st.integers(1_000, MAX_HUGE).map(lambda n: b"x" * n),  # huge
)
# ... and what a string field may not hold (proto3 strings are UTF-8).
broken_texts = st.one_of(
    st.binary(min_size=1, max_size=24),
    st.sampled_from((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\xf4\x90\x80\x80")),
)


@st.composite
def field_occurrence(draw: st.DrawFn, fd: FieldDescriptor, depth: int, broken: bool) -> bytes:
    """One occurrence of `fd` on the wire with a hostile value; a `broken` one may also have a
    wrong wire type or invalid UTF-8."""
    number, kind = fd.number, fd.type
    if broken and draw(st.integers(0, 9)) == 0:  # a wrong wire type for this field
        return tag(number, draw(st.sampled_from((0, 1, 2, 5)))) + draw(st.binary(max_size=9))
    if kind == FieldDescriptor.TYPE_MESSAGE:
        nested = fd.message_type
        assert nested is not None
        if nested.full_name in _STRUCT_TYPES and draw(st.integers(0, 3)) == 0:
            # 2 levels per Value → ListValue step: up to 49 steps parse, past that is too deep.
            steps = draw(st.integers(5, 200 if broken else 48))
            return delimited(number, deep_struct_field(nested.full_name, steps))
        if depth >= MAX_DEPTH:
            return delimited(number, b"")
        return delimited(number, draw(message_body(nested, depth + 1, broken)))
    if kind == FieldDescriptor.TYPE_STRING:
        return delimited(number, draw(st.one_of(texts, broken_texts) if broken else texts))
    if kind == FieldDescriptor.TYPE_BYTES:
        return delimited(number, draw(st.one_of(texts, st.binary(max_size=64))))
    if kind in _FIXED64:
        bits = draw(st.one_of(st.binary(min_size=8, max_size=8), st.just(struct.pack("<d", 1e308))))
        return tag(number, _WIRE_I64) + bits
    if kind in _FIXED32:
        return tag(number, _WIRE_I32) + draw(st.binary(min_size=4, max_size=4))
    if kind == FieldDescriptor.TYPE_ENUM:
        # Mostly a declared value, so the request gets past the enum check to the next one.
        assert fd.enum_type is not None
        declared = [v.number for v in fd.enum_type.values]
        value = draw(st.one_of(st.sampled_from(declared), st.sampled_from(declared), integers))
    else:
        value = draw(integers)
    if kind in _ZIGZAG:
        value = (value << 1) ^ (value >> 63)
    return tag(number, _WIRE_VARINT) + varint(value)


@st.composite
def message_body(
    draw: st.DrawFn, descriptor: Descriptor, depth: int = 0, broken: bool = False
) -> bytes:
    """A message of `descriptor` as wire bytes: some of its fields (repeats allowed, as for a
    repeated field) and sometimes an unknown field; a `broken` one may also hold groups nested
    past the depth limit or be cut short."""
    fields = list(descriptor.fields)
    chosen = draw(st.lists(st.sampled_from(fields), max_size=6)) if fields else []
    body = b"".join(draw(field_occurrence(fd, depth, broken)) for fd in chosen)
    extra = draw(st.integers(0, 7))
    if extra == 0:  # an unknown field, which a parser keeps and a handler ignores
        body += delimited(draw(st.integers(1000, 2**29 - 1)), draw(st.binary(max_size=16)))
    elif broken and extra == 1:  # unknown groups nested past protobuf's depth limit (100)
        levels = draw(st.integers(101, 3_000))
        body += tag(999, _WIRE_START) * levels + tag(999, _WIRE_END) * levels
    elif broken and extra == 2 and body:  # cut short
        body = body[: draw(st.integers(0, len(body) - 1))]
    return body


def request_bodies(method: MethodDescriptor) -> st.SearchStrategy[list[bytes]]:
    """What a caller sends to `method`: one body, or 1-3 for a request stream. Most parse (and
    reach the handler with hostile values); the rest are broken messages or random bytes."""
    body = st.one_of(
        message_body(method.input_type),
        message_body(method.input_type),
        message_body(method.input_type),
        message_body(method.input_type, broken=True),
        st.binary(max_size=64),
    )
    if method.client_streaming:
        return st.lists(body, min_size=1, max_size=3)
    return body.map(lambda one: [one])


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def call_raw(
    channel: grpc.Channel, method: MethodDescriptor, bodies: list[bytes]
) -> tuple[grpc.StatusCode, str]:
    """Calls `method` with raw `bodies` (no serializers); its status code and message."""
    name = path(method)
    try:
        if method.client_streaming and method.server_streaming:
            responses = channel.stream_stream(name)(iter(bodies), timeout=CALL_TIMEOUT_S)
        elif method.client_streaming:
            channel.stream_unary(name)(iter(bodies), timeout=CALL_TIMEOUT_S)
            return grpc.StatusCode.OK, ""
        elif method.server_streaming:
            responses = channel.unary_stream(name)(bodies[0], timeout=CALL_TIMEOUT_S)
        else:
            channel.unary_unary(name)(bodies[0], timeout=CALL_TIMEOUT_S)
            return grpc.StatusCode.OK, ""
        for count, _ in enumerate(responses, 1):
            if count >= MAX_RESPONSES:
                responses.cancel()
                return grpc.StatusCode.OK, ""
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        return error.code(), error.details() or ""


class ServerLog(logging.Handler):
    """Collects every record at WARNING or above, and any with a traceback, from all loggers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING or record.exc_info:
            self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        taken, self.records = self.records, []
        return taken


@dataclass
class Servers:
    """The three services on loopback, a raw channel to each, and what they logged."""

    channels: dict[str, grpc.Channel]
    log: ServerLog


def new_stub(stub_class: Any, channel: grpc.Channel) -> Any:
    """A generated stub (generated gRPC code has no type stubs)."""
    return stub_class(channel)


def seed_resources(registry_address: str) -> None:
    """Model `fuzz` and dataset `fuzz` (the shipped mini traces), for NAMES to find."""
    with grpc.insecure_channel(registry_address) as channel:
        stub = new_stub(registry_service_pb2_grpc.RegistryServiceStub, channel)
        stub.CreateModel(registry_service_pb2.CreateModelRequest(model_id="fuzz"), timeout=30)
        import_dataset(stub, "fuzz")


@contextmanager
def running_services(data_dir: Path) -> Iterator[dict[str, str]]:
    """The three services on loopback (tests.main_job), storing under `data_dir`, with
    seed_resources in the registry; yields each one's address by name (the keys of SERVED)."""
    with main_job_services(data_dir) as services:
        seed_resources(services.registry)
        yield {
            "registry": services.registry,
            "training": services.training,
            "inference": services.inference,
        }


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    log = ServerLog()
    logging.getLogger().addHandler(log)
    try:
        with running_services(tmp_path_factory.mktemp("fuzz")) as addresses:
            channels = {name: grpc.insecure_channel(address) for name, address in addresses.items()}
            yield Servers(channels, log)
            for channel in channels.values():
                channel.close()
    finally:
        logging.getLogger().removeHandler(log)


def problems(record: logging.LogRecord) -> bool:
    """Whether a server log record shows the server, not the caller, failing."""
    return record.levelno >= logging.ERROR or record.exc_info is not None


@pytest.mark.parametrize(
    ("server", "method"),
    METHODS,
    ids=[f"{s}:{m.containing_service.name}.{m.name}" for s, m in METHODS],
)
def test_malformed_requests_get_a_clear_status(
    servers: Servers, server: str, method: MethodDescriptor, capfd: pytest.CaptureFixture[str]
) -> None:
    channel = servers.channels[server]
    servers.log.take()

    @settings(
        max_examples=EXAMPLES_PER_METHOD,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(bodies=request_bodies(method))
    def fuzz(bodies: list[bytes]) -> None:
        code, message = call_raw(channel, method, bodies)
        assert code not in FORBIDDEN, (path(method), code, message, bodies[0][:200])
        # A status too big for the trailers arrives as this instead of itself (finding 5).
        assert "metadata size" not in message, (path(method), code, message)

    fuzz()
    logged = [record for record in servers.log.take() if problems(record)]
    assert not logged, [(r.name, r.getMessage(), r.__dict__.get("method")) for r in logged]
    assert "Traceback" not in capfd.readouterr().err


def test_huge_bad_value_is_invalid_argument_naming_the_field(servers: Servers) -> None:
    # Echoed whole, 20,000 characters pushed the status past gRPC's metadata limit and the
    # caller got RESOURCE_EXHAUSTED; through inference, a retryable UNAVAILABLE.
    registry = new_stub(registry_service_pb2_grpc.RegistryServiceStub, servers.channels["registry"])
    with pytest.raises(grpc.RpcError) as caught:
        registry.CreateModel(registry_service_pb2.CreateModelRequest(model_id="x" * 20_000))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = caught.value.details() or ""
    assert message.startswith("model_id: ") and len(message.encode()) <= 512, message
    inference = new_stub(
        inference_service_pb2_grpc.InferenceServiceStub, servers.channels["inference"]
    )
    for reference in ("x" * 20_000, "fuzz@" + "y" * 20_000):
        with pytest.raises(grpc.RpcError) as caught:
            inference.LoadModel(inference_service_pb2.LoadModelRequest(model=reference))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        message = caught.value.details() or ""
        assert message.startswith("model: ") and len(message.encode()) <= 512, message


def test_servers_stay_healthy(servers: Servers) -> None:
    assert not_serving(servers.channels) == []


def not_serving(channels: dict[str, grpc.Channel]) -> list[tuple[str, str]]:
    """(server, service) of every health check ("" = the whole server) not answering SERVING."""
    found = []
    for server, services in SERVED.items():
        health = new_stub(health_pb2_grpc.HealthStub, channels[server])
        for service in ("", *(s.full_name for s in services)):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            if response.status != health_pb2.HealthCheckResponse.SERVING:
                found.append((server, service))
    return found
