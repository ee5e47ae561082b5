"""Sessions, idempotency keys and shared helpers of the registry repository."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tunix_rt.common.errors import InvalidArgument, NotFound
from tunix_rt.registry.storage.engine import make_engine
from tunix_rt.registry.storage.schema import IdempotencyKeyRow

T = TypeVar("T")
MAX_REQUEST_ID = 128


def check_request_id(request_id: str) -> None:
    """An idempotency key must fit its column and hold no NUL."""
    if len(request_id) > MAX_REQUEST_ID:
        raise InvalidArgument.field("request_id", f"exceeds {MAX_REQUEST_ID} chars")
    if "\x00" in request_id:
        raise InvalidArgument.field("request_id", "must not contain NUL characters")


def one_or_not_found(session: Session, query: Select[T], resource_type: str, name: str) -> T:
    """The one row `query` selects, or NotFound naming the resource."""
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(resource_type, name)
    return row


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def new_uid() -> str:
    return uuid.uuid4().hex


def json_value(value: Any) -> Any:
    """A JSON column read through the DB-API: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def datetime_value(value: Any) -> datetime:
    """A timestamp read through the DB-API: ISO text on SQLite, a datetime on PostgreSQL."""
    return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


class RepositoryBase:
    """Owns the engines; every public method is one unit of work in its own session.

    Hot point reads (GetTrace) skip SQLAlchemy's Session and result machinery and run one
    prepared statement on a DB-API connection held per thread: the ORM path costs several times
    the query itself (measured in bench/registry.py: ~0.45 ms vs ~0.1 ms on SQLite).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._read_engine: Engine = make_engine(url)
        self._write_engine: Engine = make_engine(url, write=True)
        self._read = sessionmaker(self._read_engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        self._hot = threading.local()
        self._hot_connections: list[Any] = []
        self._hot_lock = threading.Lock()
        # The DB-API placeholder: `?` for sqlite3, `%s` for psycopg.
        self._param = "?" if self._read_engine.dialect.paramstyle == "qmark" else "%s"

    def close(self) -> None:
        with self._hot_lock:
            for conn in self._hot_connections:
                conn.close()
            self._hot_connections.clear()
        self._read_engine.dispose()
        self._write_engine.dispose()

    def hot_read_one(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        """Runs a single-row SELECT (`{param}` marks placeholders) on this thread's connection.

        Autocommit, so each statement sees the latest committed data and holds no snapshot open.
        """
        conn = getattr(self._hot, "conn", None)
        if conn is None:
            conn = self._read_engine.raw_connection()
            driver: Any = conn.driver_connection
            # psycopg: no transaction around the lone SELECT. (sqlite3 in pysqlite's default
            # mode already runs a SELECT outside any transaction.)
            if hasattr(driver, "autocommit"):
                driver.autocommit = True
            self._hot.conn = conn
            with self._hot_lock:
                self._hot_connections.append(conn)
        cursor = conn.cursor()
        try:
            cursor.execute(sql.format(param=self._param), params)
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    def idempotent(
        self,
        method: str,
        request_id: str,
        fingerprint: str,
        create: Callable[[Session], str],
    ) -> str:
        """Runs `create` (which returns the new resource's name) at most once per request_id.

        A repeat with the same request returns the first resource's name; a repeat with a
        different request is an error. A concurrent twin loses on the primary key and then
        reads the winner's result.
        """
        check_request_id(request_id)

        def attempt(session: Session) -> str:
            if not request_id:
                return create(session)
            held = session.get(IdempotencyKeyRow, (method, request_id))
            if held is not None:
                if held.fingerprint != fingerprint:
                    raise InvalidArgument.field(
                        "request_id", "was already used for a different request"
                    )
                return held.resource
            resource = create(session)
            session.add(
                IdempotencyKeyRow(
                    method=method,
                    request_id=request_id,
                    fingerprint=fingerprint,
                    resource=resource,
                    create_time=now(),
                )
            )
            session.flush()
            return resource

        return self.write_retrying(attempt)

    def write_retrying(self, work: Callable[[Session], T], attempts: int = 3) -> T:
        """Runs `work` in a write transaction, again when a concurrent writer won a unique key.

        Check-then-insert races on PostgreSQL (READ COMMITTED; SQLite serializes writers): two
        transactions both see no row and both insert; the loser gets an IntegrityError. Its retry
        sees the winner's committed row and answers as if it had come second (ALREADY_EXISTS, the
        stored idempotent result, an update instead of an insert).
        """
        for n in range(attempts):
            try:
                with self.writing() as session:
                    return work(session)
            except IntegrityError:
                if n == attempts - 1:
                    raise
        raise AssertionError("unreachable")
