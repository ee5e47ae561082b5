"""Run use cases: create, get, list and transition runs; append and list their events; record and
list their checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tunix_rt.common import canonical, pagination
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.registry import names, runs
from tunix_rt.registry.limits import check_chars, check_finite
from tunix_rt.registry.storage.base import new_uid, now
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.use_cases.page import Page

# The google.rpc.Code a run that ends FAILED, CANCELLED or PRUNED records as its error (a pruned
# trial was stopped on purpose, as a cancelled one was).
_CODE_CANCELLED = 1
_CODE_INTERNAL = 13


class Runs:
    """The run use cases over the repository."""

    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    def create_run(self, run: runs.Run, run_id: str, request_id: str) -> runs.Run:
        run_id = names.check_id(run_id, "run_id") if run_id else new_uid()
        check_chars(run.display_name, "run.display_name")
        check_chars(run.owner, "run.owner")
        dataset = ""
        if run.dataset:
            dataset_id = names.parse(run.dataset, "datasets", "run.dataset")
            self.repo.get_dataset(dataset_id)
            # Stored as the full name whether given as `datasets/x` or `x`, so filters match.
            dataset = names.dataset_name(dataset_id)
        stamp = now()
        record = runs.Run(
            **{
                **run.__dict__,
                "run_id": run_id,
                "dataset": dataset,
                "state": runs.RunState.QUEUED,
                "create_time": stamp,
                "update_time": stamp,
                "last_sequence": 0,
                "error": None,
                "start_time": None,
                "end_time": None,
            }
        )
        fingerprint = canonical.sha256_hex(
            canonical.dumps(
                [record.display_name, record.dataset, record.config, record.owner, record.labels]
            )
        )

        def insert(session: Any) -> str:
            self.repo.insert_run(session, record)
            return run_id

        return self.repo.get_run(self.repo.idempotent("CreateRun", request_id, fingerprint, insert))

    def get_run(self, name: str) -> runs.Run:
        return self.repo.get_run(names.parse(name, "runs", "name"))

    def list_runs(
        self,
        states: Sequence[runs.RunState],
        owner: str,
        dataset: str,
        size: int,
        token: str,
    ) -> Page[runs.Run]:
        check_chars(owner, "owner", None)
        check_chars(dataset, "dataset", None)
        if dataset:  # runs store the full name; accept a bare id as everywhere else
            dataset = names.dataset_name(names.parse(dataset, "datasets", "dataset"))
        limit = pagination.page_size(size)
        key = [sorted(int(s) for s in states), owner, dataset]
        after = pagination.decode(token, key) or 0
        items, last = self.repo.list_runs(states, owner, dataset, int(after), limit)
        return Page.of(items, last, key)

    def transition_run(
        self,
        name: str,
        target: runs.RunState,
        expected: runs.RunState | None,
        devices: dict[str, Any] | None,
        reason: str,
        owner: str,
        config_update: dict[str, Any],
    ) -> runs.Run:
        run_id = names.parse(name, "runs", "name")
        check_chars(owner, "owner")
        if target == runs.RunState.UNSPECIFIED:
            raise InvalidArgument.field("state", "is required")
        error = None
        if target in (runs.RunState.FAILED, runs.RunState.CANCELLED, runs.RunState.PRUNED):
            code = _CODE_INTERNAL if target == runs.RunState.FAILED else _CODE_CANCELLED
            error = {"code": code, "message": reason or target.name.lower()}
        return self.repo.transition_run(
            run_id, target, expected, devices, error, owner, config_update
        )

    def append_run_events(self, name: str, events: Sequence[runs.RunEvent]) -> tuple[int, int]:
        run_id = names.parse(name, "runs", "run")
        if not events:
            raise InvalidArgument.field("events", "must hold at least one event")
        if len(events) > runs.MAX_EVENTS_PER_APPEND:
            raise InvalidArgument.field("events", f"at most {runs.MAX_EVENTS_PER_APPEND} per call")
        for n, event in enumerate(events):
            if event.sequence < 1:
                raise InvalidArgument.field(f"events[{n}].sequence", "must be at least 1")
            if not event.kind:
                raise InvalidArgument.field(f"events[{n}].payload", "is required")
        return self.repo.append_events(run_id, events)

    def list_run_events(
        self, name: str, from_sequence: int, size: int, token: str
    ) -> tuple[list[runs.RunEvent], str, int]:
        """A page of events from `from_sequence`, the next page's token and the run's last
        sequence."""
        run_id = names.parse(name, "runs", "run")
        if from_sequence < 0:
            raise InvalidArgument.field("from_sequence", "must not be negative")
        limit = pagination.page_size(size, default=500, maximum=10_000)
        start = pagination.decode(token, [run_id]) or max(1, from_sequence)
        events, last = self.repo.list_events(run_id, int(start), limit)
        more = bool(events) and events[-1].sequence < last and len(events) == limit
        token_out = pagination.encode(events[-1].sequence + 1, [run_id]) if more else ""
        return events, token_out, last

    def create_checkpoint(
        self, name: str, step: int, uri: str, metrics: dict[str, float], time: datetime | None
    ) -> runs.Checkpoint:
        run_id = names.parse(name, "runs", "run")
        if step < 0:
            raise InvalidArgument.field("checkpoint.step", "must be at least 0")
        check_chars(uri, "checkpoint.uri", None)
        check_finite(metrics, "checkpoint.metrics")
        return self.repo.upsert_checkpoint(run_id, step, uri, metrics, time or now())

    def list_checkpoints(self, name: str, size: int, token: str) -> Page[runs.Checkpoint]:
        run_id = names.parse(name, "runs", "run")
        limit = pagination.page_size(size)
        after = pagination.decode(token, [run_id])
        items, last = self.repo.list_checkpoints(run_id, -1 if after is None else int(after), limit)
        return Page.of(items, last, [run_id])
