"""Datasets and their members in the database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from tunix_rt.common.errors import AlreadyExists, FailedPrecondition, NotFound
from tunix_rt.registry import datasets as ds
from tunix_rt.registry.storage.base import RepositoryBase, one_or_not_found, utc
from tunix_rt.registry.storage.schema import DatasetMemberRow, DatasetRow, EvaluationRow, TraceRow
from tunix_rt.registry.storage.trace_repository import INSERT_BATCH, trace_from_row
from tunix_rt.registry.traces import Trace


def dataset_row(session: Session, dataset_id: str) -> DatasetRow:
    query = select(DatasetRow).where(DatasetRow.dataset_id == dataset_id)
    return one_or_not_found(session, query, "dataset", f"datasets/{dataset_id}")


def dataset_from_row(row: DatasetRow) -> ds.Dataset:
    return ds.Dataset(
        dataset_id=row.dataset_id,
        description=row.description,
        filter=ds.TraceFilter.from_json(row.filter) if row.filter is not None else None,
        split=ds.SplitConfig(row.eval_fraction, row.seed),
        stats=row.stats,
        content_hash=row.content_hash,
        create_time=utc(row.create_time),
    )


class DatasetRepository(RepositoryBase):
    """Stores datasets."""

    def insert_dataset(
        self,
        session: Session,
        dataset: ds.Dataset,
        traces: Sequence[Trace],
        splits: Sequence[int],
    ) -> None:
        """Stores a dataset and its members in the caller's transaction."""
        taken = session.scalar(
            select(func.count())
            .select_from(DatasetRow)
            .where(DatasetRow.dataset_id == dataset.dataset_id)
        )
        if taken:
            raise AlreadyExists("dataset", f"datasets/{dataset.dataset_id}")
        row = DatasetRow(
            dataset_id=dataset.dataset_id,
            description=dataset.description,
            filter=dataset.filter.to_json() if dataset.filter else None,
            eval_fraction=dataset.split.eval_fraction,
            seed=dataset.split.seed,
            stats=dataset.stats,
            content_hash=dataset.content_hash,
            create_time=dataset.create_time,
        )
        session.add(row)
        session.flush()
        ids: dict[str, int] = {}
        uids = [t.uid for t in traces]
        for start in range(0, len(uids), INSERT_BATCH):
            chunk = uids[start : start + INSERT_BATCH]
            ids.update(
                (uid, pk)
                for uid, pk in session.execute(
                    select(TraceRow.uid, TraceRow.id).where(TraceRow.uid.in_(chunk))
                )
            )
        missing = [uid for uid in uids if uid not in ids]
        if missing:
            # A member was deleted between reading it and writing the dataset.
            raise NotFound("trace", f"traces/{missing[0]}")
        members = [
            {"dataset_id": row.id, "position": pos, "trace_id": ids[uid], "split": split}
            for pos, (uid, split) in enumerate(zip(uids, splits, strict=True))
        ]
        for start in range(0, len(members), INSERT_BATCH):
            session.execute(insert(DatasetMemberRow), members[start : start + INSERT_BATCH])

    def get_dataset(self, dataset_id: str) -> ds.Dataset:
        with self.reading() as session:
            return dataset_from_row(dataset_row(session, dataset_id))

    def list_datasets(self, after_id: int, limit: int) -> tuple[list[ds.Dataset], int | None]:
        with self.reading() as session:
            rows = list(
                session.scalars(
                    select(DatasetRow)
                    .where(DatasetRow.id > after_id)
                    .order_by(DatasetRow.id)
                    .limit(limit + 1)
                )
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return [dataset_from_row(r) for r in rows], (rows[-1].id if more else None)

    def delete_dataset(self, dataset_id: str) -> None:
        with self.writing() as session:
            row = dataset_row(session, dataset_id)
            evaluated = session.scalar(
                select(func.count())
                .select_from(EvaluationRow)
                .where(EvaluationRow.dataset_id == row.id)
            )
            if evaluated:
                raise FailedPrecondition(
                    f"dataset has {evaluated} evaluation(s) that refer to it",
                    reason="DATASET_HAS_EVALUATIONS",
                )
            session.execute(delete(DatasetMemberRow).where(DatasetMemberRow.dataset_id == row.id))
            session.delete(row)

    def iter_dataset(
        self, dataset_id: str, splits: Sequence[int], batch: int = 256
    ) -> Iterator[list[tuple[int, Trace]]]:
        """Yields (split, trace) batches: each split in `splits` order, members by position.

        Each batch is read in its own short session, so a slow consumer holds no transaction.
        """
        with self.reading() as session:
            pk = dataset_row(session, dataset_id).id
        for split in splits:
            after = -1
            while True:
                with self.reading() as session:
                    rows = session.execute(
                        select(DatasetMemberRow.position, TraceRow)
                        .join(TraceRow, TraceRow.id == DatasetMemberRow.trace_id)
                        .where(
                            DatasetMemberRow.dataset_id == pk,
                            DatasetMemberRow.split == split,
                            DatasetMemberRow.position > after,
                        )
                        .order_by(DatasetMemberRow.position)
                        .limit(batch)
                    ).all()
                if not rows:
                    break
                after = rows[-1][0]
                yield [(split, trace_from_row(row)) for _pos, row in rows]
                if len(rows) < batch:
                    break
