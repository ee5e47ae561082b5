"""Registry benchmark: unary read throughput against a bare gRPC echo server, and import throughput.

Run: `make bench` or `.venv/bin/python bench/registry.py [--seconds 5] [--rounds 3]
[--concurrency 16] [--traces datasets/reasoning-train-v1.jsonl]` (the shipped training set,
2,000 traces, is what it imports by default).

Both servers run in their own subprocess (one event loop each, like production) and are driven by
the same asyncio client with the same concurrency, alternating rounds so machine noise hits both
alike; the ratio is what to compare across machines, not the absolute rates.

GetTrace is measured twice: as a client reads it (the generated stub, which parses the response)
and with the response left as bytes, as the echo client leaves its echo. The second is the ratio
of the servers' work alone; the first adds the client's parse of the trace (its `meta` Struct),
which the echo client never pays.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from tunix_rt.common.host import describe_cpu
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = ROOT / "datasets" / "reasoning-train-v1.jsonl"

ECHO_SERVER = """
import asyncio, grpc, sys
async def main():
    async def echo(request, context):
        return request
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""

# The same echo behind tunix-rt's own bootstrap (interceptors: errors, logs, metrics; health;
# reflection), to split the registry's cost into framework and registry work.
FRAMEWORK_ECHO_SERVER = """
import asyncio, grpc
from tunix_rt.common.config import ServerConfig
from tunix_rt.common.server import ServiceRegistration, start_server
async def main():
    async def echo(request, context):
        return request
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    running = await start_server(ServerConfig(), "echo", [
        ServiceRegistration("bench.Echo", lambda s: s.add_generic_rpc_handlers((handler,)))])
    print(running.port, flush=True)
    await running.wait_for_termination()
asyncio.run(main())
"""

REGISTRY_SERVER = """
import asyncio, sys, pathlib
from tunix_rt.registry.server import start_registry
async def main():
    running = await start_registry(data_dir=pathlib.Path(sys.argv[1]))
    print(running.port, flush=True)
    await running.server.wait_for_termination()
asyncio.run(main())
"""


def spawn(code: str, *args: str, **extra_env: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, **extra_env, "PYTHONPATH": f"{ROOT / 'clients'}:{ROOT / 'services'}"}
    env["TUNIX_RT_LOG_LEVEL"] = "WARNING"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def throughput(call: Callable[[], Awaitable[object]], seconds: float, workers: int) -> float:
    """Completed calls per second with `workers` calls in flight."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / (time.perf_counter() - start)


async def run(args: argparse.Namespace, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        echo_proc, echo_port = spawn(ECHO_SERVER)
        reg_proc, reg_port = spawn(REGISTRY_SERVER, tmp)
        frame_proc, frame_port = spawn(FRAMEWORK_ECHO_SERVER)
        cold_proc: subprocess.Popen[str] | None = None
        try:
            frame_channel = grpc.aio.insecure_channel(f"127.0.0.1:{frame_port}")
            echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}")
            reg_channel = grpc.aio.insecure_channel(f"127.0.0.1:{reg_port}")
            new_stub: Any = registry_service_pb2_grpc.RegistryServiceStub
            stub = new_stub(reg_channel)

            import_rates = []
            names: list[str] = []
            for n in range(args.rounds):
                start = time.perf_counter()
                response = await stub.ImportTraces(_chunks(data, f"bench-{n}"))
                import_rates.append(response.imported_count / (time.perf_counter() - start))
                names = list(response.trace_names)
            trace = (await stub.GetTrace(pb.GetTraceRequest(name=names[0]))).trace
            payload = pb.GetTraceResponse(trace=trace).SerializeToString()
            echo = echo_channel.unary_unary("/bench.Echo/Echo")
            frame_echo = frame_channel.unary_unary("/bench.Echo/Echo")
            get = pb.GetTraceRequest(name=names[len(names) // 2])

            async def call_echo() -> object:
                # Echo a payload the size of a GetTrace response, so bytes on the wire match.
                return await echo(payload)

            async def call_frame_echo() -> object:
                return await frame_echo(payload)

            async def call_get() -> object:
                return await stub.GetTrace(get)

            # The same RPC, its response kept as bytes (no client-side parse), like the echo's.
            get_bytes = reg_channel.unary_unary(
                "/tunix_rt.v1.RegistryService/GetTrace",
                request_serializer=pb.GetTraceRequest.SerializeToString,
            )

            async def call_get_bytes() -> object:
                return await get_bytes(get)

            # A second registry on the same database (started after the imports, which it would
            # slow down) with its kept responses turned off: every GetTrace reads and converts
            # the row, as a trace's first read does.
            cold_proc, cold_port = spawn(REGISTRY_SERVER, tmp, TUNIX_RT_TRACE_CACHE_BYTES="0")
            cold_channel = grpc.aio.insecure_channel(f"127.0.0.1:{cold_port}")
            cold_stub = new_stub(cold_channel)

            async def call_get_cold() -> object:
                return await cold_stub.GetTrace(get)

            await throughput(call_echo, 1.0, args.concurrency)  # warm-up
            await throughput(call_get, 1.0, args.concurrency)
            await throughput(call_frame_echo, 1.0, args.concurrency)
            await throughput(call_get_bytes, 1.0, args.concurrency)
            await throughput(call_get_cold, 1.0, args.concurrency)
            echo_rates, frame_rates, get_rates, bytes_rates, cold_rates = [], [], [], [], []
            for _ in range(args.rounds):
                echo_rates.append(await throughput(call_echo, args.seconds, args.concurrency))
                frame_rates.append(
                    await throughput(call_frame_echo, args.seconds, args.concurrency)
                )
                get_rates.append(await throughput(call_get, args.seconds, args.concurrency))
                bytes_rates.append(await throughput(call_get_bytes, args.seconds, args.concurrency))
                cold_rates.append(await throughput(call_get_cold, args.seconds, args.concurrency))
            await echo_channel.close()
            await frame_channel.close()
            await reg_channel.close()
            await cold_channel.close()
        finally:
            for proc in (echo_proc, reg_proc, frame_proc, cold_proc):
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)
    ratios = [g / e for g, e in zip(get_rates, echo_rates, strict=True)]
    bytes_ratios = [g / e for g, e in zip(bytes_rates, echo_rates, strict=True)]
    cold_ratios = [g / e for g, e in zip(cold_rates, echo_rates, strict=True)]
    print(f"machine: {describe_cpu()}; concurrency {args.concurrency}; rounds {args.rounds}")
    print(f"bare echo      : {statistics.median(echo_rates):8.0f} calls/s (median)")
    print(f"echo+bootstrap : {statistics.median(frame_rates):8.0f} calls/s (median)")
    print(f"GetTrace       : {statistics.median(get_rates):8.0f} calls/s (median)")
    print(f"GetTrace, bytes: {statistics.median(bytes_rates):8.0f} calls/s (median)")
    print(f"GetTrace, no kept responses: {statistics.median(cold_rates):8.0f} calls/s (median)")
    frame_ratio = statistics.median(f / e for f, e in zip(frame_rates, echo_rates, strict=True))
    print(f"ratio echo+bootstrap/echo: {frame_ratio:.2f}")
    print(
        f"ratio GetTrace/echo: {statistics.median(ratios):.2f} "
        f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(
        f"ratio GetTrace read as bytes/echo: {statistics.median(bytes_ratios):.2f} "
        f"(per round: {', '.join(f'{r:.2f}' for r in bytes_ratios)})"
    )
    print(
        f"ratio GetTrace without kept responses/echo: {statistics.median(cold_ratios):.2f} "
        f"(per round: {', '.join(f'{r:.2f}' for r in cold_ratios)})"
    )
    print(
        f"ImportTraces ({len(names)} traces): {statistics.median(import_rates):8.0f} traces/s "
        f"(per round: {', '.join(f'{r:.0f}' for r in import_rates)})"
    )


async def _chunks(data: bytes, source: str, size: int = 256 << 10):  # type: ignore[no-untyped-def]
    yield pb.ImportTracesRequest(options=pb.ImportOptions(source=source), data=data[:size])
    for start in range(size, len(data), size):
        yield pb.ImportTracesRequest(data=data[start : start + size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--traces",
        default=str(DEFAULT_TRACES),
        help="JSONL traces to import (default: %(default)s)",
    )
    args = parser.parse_args()
    asyncio.run(run(args, Path(args.traces).read_bytes()))


if __name__ == "__main__":
    main()
