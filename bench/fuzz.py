"""Fuzzing every RPC at volume: `--requests` malformed requests (tests/test_fuzz.py's strategies:
wire bytes built from each method's input descriptor, plus random bytes) spread over every method
of the registry, training and inference services, then every status code counted, the calls that
ended INTERNAL or UNKNOWN listed, and the server log's errors and traceback lines counted.

    .venv/bin/python bench/fuzz.py [--requests 10000] [--seed 0]

The three services run in this process (real gRPC on loopback, SQLite in a temporary
directory). Exits 1 when any call ended INTERNAL or UNKNOWN, a traceback was logged, or a server
stopped answering its health check.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_fuzz import (  # noqa: E402
    FORBIDDEN,
    METHODS,
    ServerLog,
    call_raw,
    not_serving,
    path,
    request_bodies,
    running_services,
)


@dataclass
class Outcome:
    """What the fuzzed calls ended with."""

    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    messages: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    # (method, code, message, the first body's first 64 bytes in hex) of each INTERNAL / UNKNOWN.
    forbidden: list[tuple[str, str, str, str]] = field(default_factory=list)


def fuzz(requests: int, random_seed: int, channels: dict[str, grpc.Channel]) -> Outcome:
    """Sends `requests` fuzzed calls, each to a method drawn from all of them."""
    outcome = Outcome()
    calls = st.sampled_from(METHODS).flatmap(
        lambda pair: st.tuples(st.just(pair), request_bodies(pair[1]))
    )

    @seed(random_seed)
    @settings(
        max_examples=requests,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # counting, not minimising: no shrinking
        suppress_health_check=list(HealthCheck),
    )
    @given(call=calls)
    def one(call: tuple[tuple[str, MethodDescriptor], list[bytes]]) -> None:
        (server, method), bodies = call
        code, message = call_raw(channels[server], method, bodies)
        outcome.codes[code.name] += 1
        outcome.messages[(code.name, message[:100])] += 1
        if code in FORBIDDEN:
            outcome.forbidden.append((path(method), code.name, message, bodies[0][:64].hex()))

    one()
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    log = ServerLog()
    logging.getLogger().addHandler(log)
    with tempfile.TemporaryDirectory() as data_dir, running_services(Path(data_dir)) as addresses:
        channels = {name: grpc.insecure_channel(address) for name, address in addresses.items()}
        start = time.perf_counter()
        outcome = fuzz(args.requests, args.seed, channels)
        seconds = time.perf_counter() - start
        ok = not not_serving(channels)
        for channel in channels.values():
            channel.close()
    records = log.take()
    errors = [r for r in records if r.levelno >= logging.ERROR]
    traceback_lines = sum(
        len(traceback.format_exception(*r.exc_info)) for r in records if r.exc_info
    )

    codes = outcome.codes
    total = sum(codes.values())
    print(f"{total} requests to {len(METHODS)} methods in {seconds:.1f} s (seed {args.seed})")
    print(f"{'code':<22}{'count':>8}")
    for name in [c.name for c in grpc.StatusCode]:
        print(f"{name:<22}{codes.get(name, 0):>8}")
    print("most common messages of each code but OK and INVALID_ARGUMENT:")
    for name in [c.name for c in grpc.StatusCode if c.name not in ("OK", "INVALID_ARGUMENT")]:
        common = [(m, n) for (c, m), n in outcome.messages.most_common() if c == name][:3]
        for message, count in common:
            print(f"  {name:<20}{count:>6}  {message!r}")
    print(f"server log: {len(errors)} ERROR records, {traceback_lines} traceback lines")
    print(f"servers healthy afterwards: {ok}")
    for method, code, message, body in outcome.forbidden:
        print(f"  {code} {method}: {message!r} (body starts {body})")
    return 1 if outcome.forbidden or traceback_lines or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
