"""Stored times read back whatever the PostgreSQL server's time zone: the registry's sessions read
in UTC, so the ends of the Timestamp range never become a year Python cannot hold."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import LoopThread, postgres_database
from tunix_rt.registry.server import start_registry
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc, run_pb2

# Zones on each side of UTC: in the first the first second of year 1 is 1 BC, in the second the
# last second of 9999 is year 10000; psycopg refuses both.
ZONES = ["America/New_York", "Pacific/Kiritimati"]


@pytest.mark.postgres
@pytest.mark.parametrize("zone", ZONES)
def test_times_at_the_ends_of_the_range_read_back_in_any_zone(tmp_path: Path, zone: str) -> None:
    with postgres_database() as url:
        name = make_url(url).database
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO '{zone}'"))
        engine.dispose()
        loop = LoopThread()
        running = loop.run(start_registry(data_dir=tmp_path, database_url=url))
        channel = grpc.insecure_channel(running.address)
        try:
            stub = registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
            run = stub.CreateRun(pb.CreateRunRequest(run=run_pb2.Run())).run.name
            first = timestamp_pb2.Timestamp(seconds=-62135596800)
            last = timestamp_pb2.Timestamp(seconds=253402300799, nanos=999_999_000)
            events = [
                run_pb2.RunEvent(sequence=n + 1, time=t, log=run_pb2.LogLine(message="x"))
                for n, t in enumerate([first, last])
            ]
            stub.AppendRunEvents(pb.AppendRunEventsRequest(run=run, events=events))
            listed = stub.ListRunEvents(pb.ListRunEventsRequest(run=run)).events
            assert [e.time for e in listed] == [first, last]
        finally:
            channel.close()
            loop.run(running.stop(0))
            loop.close()
