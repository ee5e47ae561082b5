"""Runs, their event history and checkpoints in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunix_rt.common.errors import AlreadyExists, FailedPrecondition
from tunix_rt.registry import runs
from tunix_rt.registry.storage.base import RepositoryBase, maybe_utc, now, one_or_not_found, utc
from tunix_rt.registry.storage.schema import CheckpointRow, RunEventRow, RunRow


def run_from_row(row: RunRow) -> runs.Run:
    return runs.Run(
        run_id=row.run_id,
        display_name=row.display_name,
        dataset=row.dataset,
        config=row.config,
        state=runs.RunState(row.state),
        devices=row.devices,
        owner=row.owner,
        priority=row.priority,
        error=row.error,
        labels=row.labels,
        last_sequence=row.last_sequence,
        create_time=utc(row.create_time),
        start_time=maybe_utc(row.start_time),
        end_time=maybe_utc(row.end_time),
        update_time=utc(row.update_time),
    )


def _event_from_row(row: RunEventRow) -> runs.RunEvent:
    return runs.RunEvent(row.sequence, utc(row.time), row.step, row.kind, row.payload)


def _checkpoint_from_row(run_id: str, row: CheckpointRow) -> runs.Checkpoint:
    return runs.Checkpoint(run_id, row.step, row.uri, row.metrics, utc(row.create_time))


class RunRepository(RepositoryBase):
    """Stores runs."""

    @staticmethod
    def _run_row(session: Session, run_id: str, *, lock: bool = False) -> RunRow:
        query = select(RunRow).where(RunRow.run_id == run_id)
        if lock:
            # Serializes concurrent transitions of one run on PostgreSQL; SQLite's IMMEDIATE
            # write transactions already serialize every writer.
            query = query.with_for_update()
        return one_or_not_found(session, query, "run", f"runs/{run_id}")

    def insert_run(self, session: Session, run: runs.Run) -> None:
        if session.scalars(select(RunRow.id).where(RunRow.run_id == run.run_id)).first():
            raise AlreadyExists("run", f"runs/{run.run_id}")
        session.add(
            RunRow(
                run_id=run.run_id,
                display_name=run.display_name,
                dataset=run.dataset,
                config=run.config,
                state=int(run.state),
                devices=run.devices,
                owner=run.owner,
                priority=run.priority,
                error=None,
                labels=run.labels,
                last_sequence=0,
                create_time=run.create_time,
                start_time=None,
                end_time=None,
                update_time=run.create_time,
            )
        )

    def get_run(self, run_id: str) -> runs.Run:
        with self.reading() as session:
            return run_from_row(self._run_row(session, run_id))

    def list_runs(
        self,
        states: Sequence[runs.RunState],
        owner: str,
        dataset: str,
        after_id: int,
        limit: int,
    ) -> tuple[list[runs.Run], int | None]:
        query = select(RunRow).where(RunRow.id > after_id)
        if states:
            query = query.where(RunRow.state.in_([int(s) for s in states]))
        if owner:
            query = query.where(RunRow.owner == owner)
        if dataset:
            query = query.where(RunRow.dataset == dataset)
        with self.reading() as session:
            rows = list(session.scalars(query.order_by(RunRow.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return [run_from_row(r) for r in rows], (rows[-1].id if more else None)

    def transition_run(
        self,
        run_id: str,
        target: runs.RunState,
        expected: runs.RunState | None,
        devices: dict[str, Any] | None,
        error: dict[str, Any] | None,
        owner: str,
        config_update: dict[str, Any],
    ) -> runs.Run:
        with self.writing() as session:
            row = self._run_row(session, run_id, lock=True)
            runs.check_transition(runs.RunState(row.state), target, expected)
            stamp = now()
            row.state = int(target)
            row.update_time = stamp
            if owner:
                row.owner = owner
            if devices is not None:
                row.devices = devices
            if config_update:
                row.config = {**row.config, **config_update}
            if target == runs.RunState.RUNNING:
                row.start_time = stamp
                row.error = None
            elif target == runs.RunState.QUEUED:
                row.end_time = None
                row.error = None
            else:
                row.end_time = stamp
                row.error = error if target != runs.RunState.SUCCEEDED else None
            session.flush()
            return run_from_row(row)

    def append_events(self, run_id: str, events: Sequence[runs.RunEvent]) -> tuple[int, int]:
        """Stores the new events; returns (how many were new, the last sequence after).

        Sequences at or below the stored last one are skipped (a retried batch). New ones must
        continue the history without a gap, so every reader sees one contiguous sequence.
        """
        with self.writing() as session:
            row = self._run_row(session, run_id, lock=True)
            last = row.last_sequence
            appended = 0
            for event in sorted(events, key=lambda e: e.sequence):
                if event.sequence <= last:
                    continue
                if event.sequence != last + 1:
                    raise FailedPrecondition(
                        f"sequence {event.sequence} leaves a gap: the next must be {last + 1}",
                        reason="RUN_EVENT_GAP",
                        metadata={"expected_sequence": str(last + 1)},
                    )
                session.add(
                    RunEventRow(
                        run_id=row.id,
                        sequence=event.sequence,
                        time=event.time,
                        step=event.step,
                        kind=event.kind,
                        payload=event.payload,
                    )
                )
                last = event.sequence
                appended += 1
            if appended:
                row.last_sequence = last
                row.update_time = now()
            return appended, last

    def list_events(
        self, run_id: str, from_sequence: int, limit: int
    ) -> tuple[list[runs.RunEvent], int]:
        """Up to `limit` events from `from_sequence`, and the run's last sequence."""
        with self.reading() as session:
            row = self._run_row(session, run_id)
            events = session.scalars(
                select(RunEventRow)
                .where(RunEventRow.run_id == row.id, RunEventRow.sequence >= from_sequence)
                .order_by(RunEventRow.sequence)
                .limit(limit)
            )
            return [_event_from_row(e) for e in events], row.last_sequence

    def upsert_checkpoint(
        self, run_id: str, step: int, uri: str, metrics: dict[str, float], time: datetime
    ) -> runs.Checkpoint:

        def upsert(session: Session) -> runs.Checkpoint:
            run = self._run_row(session, run_id)
            row = session.get(CheckpointRow, (run.id, step))
            if row is None:
                row = CheckpointRow(run_id=run.id, step=step, uri=uri, metrics=metrics)
                session.add(row)
            row.uri, row.metrics, row.create_time = uri, metrics, time
            session.flush()
            return _checkpoint_from_row(run_id, row)

        # A concurrent first save of the same step loses on the key; the retry updates instead.
        return self.write_retrying(upsert)

    def list_checkpoints(
        self, run_id: str, after_step: int, limit: int
    ) -> tuple[list[runs.Checkpoint], int | None]:
        with self.reading() as session:
            run = self._run_row(session, run_id)
            rows = list(
                session.scalars(
                    select(CheckpointRow)
                    .where(CheckpointRow.run_id == run.id, CheckpointRow.step > after_step)
                    .order_by(CheckpointRow.step)
                    .limit(limit + 1)
                )
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return [_checkpoint_from_row(run_id, r) for r in rows], (rows[-1].step if more else None)
