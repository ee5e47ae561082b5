"""The items batch prediction and evaluation run over: a dataset split or an eval set, read
through the registry and cut to `max_items`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.common.outgoing import registry_call
from tunix_rt.v1 import dataset_pb2, inference_pb2
from tunix_rt.v1 import registry_service_pb2 as rpb

# Deadline of each registry call an evaluation makes (reading items here, its records in
# `eval_records`): a large source streams for a while.
REGISTRY_DEADLINE_S = 120.0
EVAL_SET_PREFIX = "evalSets/"
# Item meta entries copied into each prediction's meta (the breakdowns use the first two).
META_KEYS = ("category", "difficulty", "section")
_SPLIT_NAMES = {dataset_pb2.DATASET_SPLIT_TRAIN: "train", dataset_pb2.DATASET_SPLIT_EVAL: "eval"}


@dataclass(frozen=True)
class Item:
    """One item to predict: the raw question (before the chat template) and its answer."""

    index: int
    item_id: str
    prompt: str
    expected: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Items:
    """The items of a source and what the source is called on an Evaluation record."""

    source: str  # `datasets/{dataset}` or `evalSets/{eval_set}`
    split: int  # a DatasetSplit number; 0 for an eval set
    items: list[Item]


def _meta(struct: struct_pb2.Struct, split: str) -> dict[str, Any]:
    """The item meta of a record's meta: the META_KEYS it holds as text, and the split."""
    values = json_format.MessageToDict(struct)
    meta = {k: values[k] for k in META_KEYS if isinstance(values.get(k), str) and values[k]}
    if split:
        meta["split"] = split
    return meta


def load(stub: Any, source: inference_pb2.ItemSource, metadata: Any = None) -> Items:
    """The items of `source` in source order, at most `max_items` of them."""
    if source.max_items < 0:
        raise InvalidArgument.field("source.max_items", "must be at least 0")
    which = source.WhichOneof("source")
    limit = source.max_items or None
    if which == "dataset":
        return _dataset_items(stub, source.dataset, limit, metadata)
    if which == "eval_set":
        return _eval_set_items(stub, source.eval_set, limit, metadata)
    raise InvalidArgument.field("source", "needs a dataset or an eval_set")


def _dataset_items(
    stub: Any, source: inference_pb2.DatasetSplitSource, limit: int | None, metadata: Any
) -> Items:
    if not source.dataset:
        raise InvalidArgument.field("source.dataset.dataset", "is required")
    name = (
        source.dataset if source.dataset.startswith("datasets/") else f"datasets/{source.dataset}"
    )
    split = source.split or dataset_pb2.DATASET_SPLIT_EVAL
    if split not in _SPLIT_NAMES:
        raise InvalidArgument.field("source.dataset.split", "must be the train or eval split")
    request = rpb.ExportDatasetRequest(name=name, split=split, format=dataset_pb2.EXPORT_FORMAT_RAW)
    items: list[Item] = []

    def read() -> None:
        stream = stub.ExportDataset(request, timeout=REGISTRY_DEADLINE_S, metadata=metadata)
        for response in stream:
            for record in response.records:
                trace = record.trace
                meta = _meta(trace.meta, _SPLIT_NAMES[split])
                items.append(Item(len(items), trace.name, trace.prompt, trace.final_answer, meta))
                if limit is not None and len(items) >= limit:
                    stream.cancel()
                    return

    registry_call(read, name, "source.dataset.dataset")
    return Items(name, split, items)


def _eval_set_items(stub: Any, eval_set: str, limit: int | None, metadata: Any) -> Items:
    name = eval_set if eval_set.startswith(EVAL_SET_PREFIX) else EVAL_SET_PREFIX + eval_set
    items: list[Item] = []
    token = ""
    while True:
        request = rpb.ListEvalSetItemsRequest(eval_set=name, page_size=1000, page_token=token)
        page = registry_call(
            functools.partial(
                stub.ListEvalSetItems, request, timeout=REGISTRY_DEADLINE_S, metadata=metadata
            ),
            name,
            "source.eval_set",
        )
        for entry in page.items:
            meta = _meta(entry.meta, "")
            items.append(Item(len(items), entry.item_id, entry.prompt, entry.expected_answer, meta))
            if limit is not None and len(items) >= limit:
                return Items(name, 0, items)
        token = page.next_page_token
        if not token:
            return Items(name, 0, items)
