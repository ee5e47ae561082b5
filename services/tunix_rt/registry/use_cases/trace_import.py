"""An import of JSONL traces in progress: each chunk's lines are validated as it arrives and the
good traces stored in batches, each trace once per source.

Why deduplicate by content within the source (rather than, say, a request id derived from the
file): a retry must be a no-op whatever the first run got through — all of it, some batches, or a
file cut short — and must not depend on the retry cutting the file into the same pieces. Content
is the one thing a retry is sure to send again, as with DVC's content-addressed data or an
artifact uploaded twice. The source is part of the key, so the same trace imported under another
source (a different dataset's file) is still its own trace there; CreateTrace and
BatchCreateTraces, explicit creates, keep storing what they are given.

A stream that fails partway (a dropped connection, a malformed message) keeps the batches it
completed, as a non-atomic import keeps its good lines beside its bad ones; importing again stores
the rest.

Memory is bounded whatever the stream's length: one unfinished line (at most MAX_LINE_BYTES) and
one batch of good traces, plus the report (a name per line, an entry per bad line). An atomic
import stores everything in one transaction at the end, so it holds at most MAX_BATCH_TRACES.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tunix_rt.common import canonical
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.registry import traces as tr
from tunix_rt.registry.storage.base import check_request_id
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.storage.trace_repository import IMPORT_METHOD

# Good lines per write transaction of a non-atomic import: few enough that a large import does not
# hold the database's writer (SQLite has one) for long, many enough to amortize each commit.
IMPORT_BATCH = 1_000


@dataclass
class ImportReport:
    """What an import did."""

    line_count: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, message)
    trace_uids: list[str] = field(default_factory=list)  # one per imported line, in line order
    new_count: int = 0  # of trace_uids, those this import stored
    rejected: bool = False


class TraceImport:
    """One import: `feed` it the stream's chunks in order, then `finish` it exactly once.

    With a `request_id` already recorded, the import is a repeat: it stores nothing, and `finish`
    returns the first import's traces when the lines are the same and refuses them otherwise.
    """

    def __init__(self, repository: Repository, *, atomic: bool, source: str, request_id: str):
        check_request_id(request_id)
        self._repo = repository
        self._atomic = atomic
        self._source = source
        self._request_id = request_id
        self._repeat_of = repository.import_record(request_id) if request_id else None
        self._lines = tr.JsonlLines()
        self._pending: list[tr.TraceContent] = []
        # What a repeat must match: the source and every good line's content, in order.
        self._fingerprint = hashlib.sha256(canonical.dumps(source).encode() + b"\n")
        self.report = ImportReport()

    def feed(self, data: bytes) -> None:
        """Reads the lines `data` completes; stores a batch when one is full."""
        self._read(self._lines.feed(data))

    def finish(self) -> ImportReport:
        """Reads the last line, stores what is pending (nothing when atomic and a line was bad)
        and records the request_id; returns the report."""
        self._read(self._lines.end())
        report = self.report
        if self._atomic and report.errors:
            report.rejected = True
            return report
        fingerprint = self._fingerprint.hexdigest()
        if self._repeat_of is not None:
            recorded, joined = self._repeat_of
            if recorded != fingerprint:
                raise InvalidArgument.field(
                    "request_id", "was already used for a different request"
                )
            report.trace_uids = joined.split(",") if joined else []
            return report
        if self._pending or self._request_id:
            self._store_rest(fingerprint)
        return report

    def _read(self, lines: Iterable[tuple[int, bytes | None]]) -> None:
        for number, line in lines:
            if line is not None and not line.strip():
                continue  # blank: skipped, not counted
            self.report.line_count += 1
            try:
                if line is None:
                    raise tr.overlong_line()
                content = tr.validate(tr.parse_jsonl_line(line), source=self._source)
            except InvalidArgument as exc:
                for violation in exc.violations or []:
                    self.report.errors.append((number, violation.field, violation.description))
                continue
            self._fingerprint.update(content.content_hash().encode() + b"\n")
            if self._repeat_of is None:
                self._add(content)

    def _add(self, content: tr.TraceContent) -> None:
        self._pending.append(content)
        if not self._atomic:
            if len(self._pending) >= IMPORT_BATCH:
                uids, new = self._repo.write_retrying(
                    lambda session: self._repo.insert_new_traces(
                        session, self._source, self._pending
                    )
                )
                self._stored(uids, new)
        elif len(self._pending) > tr.MAX_BATCH_TRACES:
            raise InvalidArgument.field(
                "options.atomic",
                f"an atomic import stores at most {tr.MAX_BATCH_TRACES:,} traces, in one "
                "transaction; import without it (importing again stores no trace twice) "
                "or in parts",
            )

    def _store_rest(self, fingerprint: str) -> None:
        """Stores the pending traces and the request_id's record in one transaction."""
        ours: list[str] = []
        new_in_rest = 0

        def store(session: Any) -> str:
            nonlocal new_in_rest
            uids, new_in_rest = self._repo.insert_new_traces(session, self._source, self._pending)
            ours[:] = [*self.report.trace_uids, *uids]
            return ",".join(ours)

        joined = self._repo.idempotent(IMPORT_METHOD, self._request_id, fingerprint, store)
        if joined == ",".join(ours):
            self._stored(ours[len(self.report.trace_uids) :], new_in_rest)
        else:
            # A concurrent import with this request_id recorded its result first (its traces are
            # this one's too: the same lines into the same source); ours was rolled back.
            self.report.trace_uids = joined.split(",") if joined else []
            self._pending.clear()

    def _stored(self, uids: list[str], new: int) -> None:
        self.report.trace_uids.extend(uids)
        self.report.new_count += new
        self._pending.clear()
