"""Dataset use cases: create (from a filter or a list of traces), get, list, delete and export."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tunix_rt.common import canonical, pagination
from tunix_rt.common.errors import FailedPrecondition, InvalidArgument
from tunix_rt.registry import datasets as ds
from tunix_rt.registry import names
from tunix_rt.registry import traces as tr
from tunix_rt.registry.limits import check_chars
from tunix_rt.registry.storage.base import now
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.use_cases.page import Page

# One exported member: its split, and the trace itself or (for an SFT export) its rendering.
ExportedMember = tuple[int, tr.Trace | ds.SftExample]


class Datasets:
    """The dataset use cases over the repository."""

    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    def create_dataset(
        self,
        dataset_id: str,
        description: str,
        flt: ds.TraceFilter | None,
        trace_names: Sequence[str] | None,
        split: ds.SplitConfig,
        request_id: str,
    ) -> ds.Dataset:
        names.check_id(dataset_id, "dataset_id")
        check_chars(description, "description", None)
        ds.check_split(split)
        if (flt is None) == (trace_names is None):
            raise InvalidArgument.field("source", "give exactly one of filter or trace_names")
        if trace_names is not None:
            uids = [
                names.parse(n, "traces", f"trace_names.names[{i}]", names.UID_PATTERN)
                for i, n in enumerate(trace_names)
            ]
            ds.check_trace_names(uids)
        else:
            assert flt is not None
            ds.check_filter(flt)
            uids = self.repo.matching_trace_uids(flt)
            if not uids:
                raise FailedPrecondition("the filter matches no traces", reason="EMPTY_DATASET")
        members = self.repo.get_traces(uids)
        splits = ds.assign_splits(members, split)
        dataset = ds.Dataset(
            dataset_id=dataset_id,
            description=description,
            filter=flt,
            split=split,
            stats=ds.compute_stats(members, splits),
            content_hash=ds.content_hash(members, splits, split),
            create_time=now(),
        )
        fingerprint = canonical.sha256_hex(
            canonical.dumps([dataset_id, description, dataset.content_hash])
        )

        def insert(session: Any) -> str:
            self.repo.insert_dataset(session, dataset, members, splits)
            return dataset_id

        stored = self.repo.idempotent("CreateDataset", request_id, fingerprint, insert)
        return self.repo.get_dataset(stored)

    def get_dataset(self, name: str) -> ds.Dataset:
        return self.repo.get_dataset(names.parse(name, "datasets", "name"))

    def list_datasets(self, size: int, token: str) -> Page[ds.Dataset]:
        limit = pagination.page_size(size)
        after = pagination.decode(token, "datasets") or 0
        items, last = self.repo.list_datasets(int(after), limit)
        return Page.of(items, last, "datasets")

    def delete_dataset(self, name: str) -> None:
        self.repo.delete_dataset(names.parse(name, "datasets", "name"))

    def export_dataset(
        self, name: str, split: int, chat_template: str, *, sft: bool
    ) -> Iterator[list[ExportedMember]]:
        """The members of `split` in batches: train first, then eval, each by position. With
        `sft`, each trace comes rendered with `chat_template` (empty: the default), which is
        checked either way. Members are read (and rendered) as the batches are taken."""
        template = ds.check_chat_template(chat_template)
        dataset_id = names.parse(name, "datasets", "name")
        ds.check_split_number(split, "split")
        batches = self.repo.iter_dataset(dataset_id, ds.export_splits(split))

        def members() -> Iterator[list[ExportedMember]]:
            for batch in batches:
                yield [(s, ds.sft_example(trace, template) if sft else trace) for s, trace in batch]

        return members()
