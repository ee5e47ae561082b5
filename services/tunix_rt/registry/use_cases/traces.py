"""Trace use cases: create (one, a batch, or a JSONL import: see trace_import), get, list and
delete."""

from __future__ import annotations

from collections.abc import Sequence

from tunix_rt.common import canonical, pagination
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.registry import datasets as ds
from tunix_rt.registry import names
from tunix_rt.registry import traces as tr
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.use_cases.page import Page
from tunix_rt.registry.use_cases.trace_import import TraceImport


class Traces:
    """The trace use cases over the repository."""

    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    def create_trace(self, content: tr.TraceContent, request_id: str) -> tr.Trace:
        (uid,) = self._store([content], request_id)
        return self.repo.get_trace(uid)

    def batch_create_traces(
        self, contents: Sequence[tr.TraceContent], request_id: str
    ) -> list[tr.Trace]:
        """Stores traces all or nothing; returns them in order."""
        if not contents:
            raise InvalidArgument.field("traces", "must hold at least one trace")
        return self.repo.get_traces(self._store(contents, request_id))

    def import_traces(self, *, atomic: bool, source: str, request_id: str) -> TraceImport:
        """Starts an import of a JSONL stream; the caller feeds it the stream's chunks."""
        return TraceImport(self.repo, atomic=atomic, source=source, request_id=request_id)

    def get_trace(self, name: str) -> tr.Trace:
        return self.repo.get_trace(self.uid_of(name))

    def uid_of(self, name: str) -> str:
        """The uid of a trace name (`traces/{uid}`); INVALID_ARGUMENT on `name` otherwise."""
        return names.parse(name, "traces", "name", names.UID_PATTERN)

    def exists(self, uid: str) -> bool:
        return self.repo.trace_exists(uid)

    def list_traces(self, flt: ds.TraceFilter, size: int, token: str) -> Page[tr.Trace]:
        ds.check_filter(flt)
        limit = pagination.page_size(size)
        key = flt.to_json()
        after = pagination.decode(token, key) or 0
        items, last = self.repo.list_traces(flt, int(after), limit)
        return Page.of(items, last, key)

    def delete_trace(self, name: str) -> None:
        self.repo.delete_trace(self.uid_of(name))

    def _store(self, contents: Sequence[tr.TraceContent], request_id: str) -> list[str]:
        """Stores traces all or nothing, once per request_id; returns their uids."""
        if len(contents) > tr.MAX_BATCH_TRACES:
            raise InvalidArgument.field("traces", f"at most {tr.MAX_BATCH_TRACES} per batch")
        fingerprint = canonical.sha256_hex(
            canonical.dumps([[c.content_hash(), c.source] for c in contents])
        )
        joined = self.repo.idempotent(
            "CreateTraces",
            request_id,
            fingerprint,
            lambda session: ",".join(self.repo.insert_traces(session, contents)),
        )
        return joined.split(",") if joined else []
