"""Traces and their filterable meta entries in the database."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from tunix_rt.common.errors import FailedPrecondition, NotFound
from tunix_rt.registry import datasets as ds
from tunix_rt.registry.storage.base import (
    RepositoryBase,
    datetime_value,
    json_value,
    new_uid,
    now,
    one_or_not_found,
    utc,
)
from tunix_rt.registry.storage.engine import is_sqlite
from tunix_rt.registry.storage.schema import (
    DatasetMemberRow,
    DatasetRow,
    IdempotencyKeyRow,
    TraceMetaRow,
    TraceRow,
)
from tunix_rt.registry.traces import Step, Trace, TraceContent

_GET_TRACE_SQL = (
    "SELECT uid, source, trace_version, prompt, final_answer, steps, meta, content_hash, "
    "create_time FROM traces WHERE uid = {param}"
)
_TRACE_EXISTS_SQL = "SELECT 1 FROM traces WHERE uid = {param}"

# The idempotency records of ImportTraces are kept under this method name.
IMPORT_METHOD = "ImportTraces"

# Rows per INSERT statement: large enough to amortize round trips, small enough for SQLite's
# bound-parameter limit.
INSERT_BATCH = 500


def trace_from_row(row: TraceRow) -> Trace:
    content = TraceContent(
        trace_version=row.trace_version,
        prompt=row.prompt,
        steps=tuple(Step(s["i"], s["type"], s["content"]) for s in row.steps),
        final_answer=row.final_answer,
        meta=row.meta,
        source=row.source,
    )
    return Trace(row.uid, content, row.content_hash, utc(row.create_time))


def _source_lock_key(source: str) -> int:
    """The PostgreSQL advisory lock key (a signed 64-bit integer) of imports into `source`."""
    digest = hashlib.sha256(b"tunix-rt import into source " + source.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _filtered(query: Select[Any], flt: ds.TraceFilter) -> Select[Any]:
    if flt.source:
        query = query.where(TraceRow.source == flt.source)
    for key, value in flt.meta:
        query = query.where(
            exists().where(
                TraceMetaRow.trace_id == TraceRow.id,
                TraceMetaRow.key == key,
                TraceMetaRow.value == value,
            )
        )
    if flt.create_time_after is not None:
        query = query.where(TraceRow.create_time >= flt.create_time_after)
    if flt.create_time_before is not None:
        query = query.where(TraceRow.create_time < flt.create_time_before)
    return query


class TraceRepository(RepositoryBase):
    """Stores traces."""

    def insert_traces(self, session: Session, contents: Sequence[TraceContent]) -> list[str]:
        """Inserts traces in the caller's transaction and returns their uids in order."""
        uids: list[str] = []
        stamp = now()
        for start in range(0, len(contents), INSERT_BATCH):
            batch = contents[start : start + INSERT_BATCH]
            rows = [
                {
                    "uid": new_uid(),
                    "source": c.source,
                    "trace_version": c.trace_version,
                    "prompt": c.prompt,
                    "final_answer": c.final_answer,
                    "steps": [{"i": s.i, "type": s.type, "content": s.content} for s in c.steps],
                    "meta": c.meta,
                    "content_hash": c.content_hash(),
                    "create_time": stamp,
                }
                for c in batch
            ]
            ids = session.execute(
                insert(TraceRow).returning(TraceRow.id, sort_by_parameter_order=True), rows
            ).scalars()
            meta_rows = [
                {"trace_id": trace_id, "key": key, "value": value}
                for trace_id, content in zip(ids, batch, strict=True)
                for key, value in content.meta_index().items()
            ]
            if meta_rows:
                session.execute(insert(TraceMetaRow), meta_rows)
            uids.extend(str(row["uid"]) for row in rows)
        return uids

    def insert_new_traces(
        self, session: Session, source: str, contents: Sequence[TraceContent]
    ) -> tuple[list[str], int]:
        """Inserts, in the caller's transaction, the traces (all of `source`) that `source` does
        not hold yet, by content hash; returns the uid of every trace in order (the stored one for
        those already held, the first for repeats within `contents`) and how many were new.

        Concurrent imports into one source are serialized, so that both cannot find a trace
        missing and both insert it: SQLite already runs one write transaction at a time
        (BEGIN IMMEDIATE), PostgreSQL takes a transaction-scoped advisory lock on the source.
        """
        if not is_sqlite(self.url):
            session.execute(select(func.pg_advisory_xact_lock(_source_lock_key(source))))
        hashes = [c.content_hash() for c in contents]
        held: dict[str, str] = {}
        wanted = list(dict.fromkeys(hashes))
        for start in range(0, len(wanted), INSERT_BATCH):
            query = (
                select(TraceRow.content_hash, TraceRow.uid)
                .where(TraceRow.source == source)
                .where(TraceRow.content_hash.in_(wanted[start : start + INSERT_BATCH]))
                .order_by(TraceRow.id)
            )
            for digest, uid in session.execute(query):
                held.setdefault(digest, uid)
        fresh: dict[str, TraceContent] = {}
        for digest, content in zip(hashes, contents, strict=True):
            if digest not in held:
                fresh.setdefault(digest, content)
        held.update(zip(fresh, self.insert_traces(session, list(fresh.values())), strict=True))
        return [held[digest] for digest in hashes], len(fresh)

    def import_record(self, request_id: str) -> tuple[str, str] | None:
        """The fingerprint and joined trace uids recorded for an import's request_id, if any."""
        with self.reading() as session:
            row = session.get(IdempotencyKeyRow, (IMPORT_METHOD, request_id))
            return None if row is None else (row.fingerprint, row.resource)

    def get_trace(self, uid: str) -> Trace:
        """One trace by uid: the hottest read, on the hot-read path (see RepositoryBase)."""
        row = self.hot_read_one(_GET_TRACE_SQL, uid)
        if row is None:
            raise NotFound("trace", f"traces/{uid}")
        uid_, source, version, prompt, answer, steps, meta, digest, created = row
        content = TraceContent(
            trace_version=version,
            prompt=prompt,
            steps=tuple(Step(s["i"], s["type"], s["content"]) for s in json_value(steps)),
            final_answer=answer,
            meta=json_value(meta),
            source=source,
        )
        return Trace(uid_, content, digest, datetime_value(created))

    def trace_exists(self, uid: str) -> bool:
        """Whether the trace is stored (a point read on the hot-read path)."""
        return self.hot_read_one(_TRACE_EXISTS_SQL, uid) is not None

    def get_traces(self, uids: Sequence[str]) -> list[Trace]:
        """Traces in the order of `uids`; NotFound names the first missing one."""
        with self.reading() as session:
            return self._traces_by_uid(session, uids)

    def _traces_by_uid(self, session: Session, uids: Sequence[str]) -> list[Trace]:
        found: dict[str, TraceRow] = {}
        for start in range(0, len(uids), INSERT_BATCH):
            chunk = uids[start : start + INSERT_BATCH]
            for row in session.scalars(select(TraceRow).where(TraceRow.uid.in_(chunk))):
                found[row.uid] = row
        for uid in uids:
            if uid not in found:
                raise NotFound("trace", f"traces/{uid}")
        return [trace_from_row(found[uid]) for uid in uids]

    def list_traces(
        self, flt: ds.TraceFilter, after_id: int, limit: int
    ) -> tuple[list[Trace], int | None]:
        """A page of traces after the row id `after_id`, and the id to continue after."""
        with self.reading() as session:
            query = _filtered(select(TraceRow), flt).where(TraceRow.id > after_id)
            rows = list(session.scalars(query.order_by(TraceRow.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return [trace_from_row(r) for r in rows], (rows[-1].id if more else None)

    def delete_trace(self, uid: str) -> None:
        with self.writing() as session:
            query = select(TraceRow).where(TraceRow.uid == uid)
            row = one_or_not_found(session, query, "trace", f"traces/{uid}")
            users = session.scalars(
                select(DatasetRow.dataset_id)
                .join(DatasetMemberRow, DatasetMemberRow.dataset_id == DatasetRow.id)
                .where(DatasetMemberRow.trace_id == row.id)
                .distinct()
                .limit(5)
            ).all()
            if users:
                raise FailedPrecondition(
                    f"trace is a member of dataset(s) {', '.join(users)}; delete those first",
                    reason="TRACE_IN_DATASET",
                    metadata={"datasets": ",".join(users)},
                )
            session.execute(delete(TraceMetaRow).where(TraceMetaRow.trace_id == row.id))
            session.delete(row)

    def matching_trace_uids(self, flt: ds.TraceFilter) -> list[str]:
        with self.reading() as session:
            query = _filtered(select(TraceRow.uid), flt).order_by(TraceRow.id)
            return list(session.scalars(query))
