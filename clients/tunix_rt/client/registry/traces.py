"""The registry client's calls on traces and on the datasets made of them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from google.protobuf import timestamp_pb2

from tunix_rt.client import names
from tunix_rt.client.chunks import Progress, file_chunks, line_chunks
from tunix_rt.client.registry.base import DEFAULT_PAGE_SIZE, RegistryCalls
from tunix_rt.client.service_client import capped_page_size, pages, request_id_or_new
from tunix_rt.v1 import dataset_pb2, trace_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

# Trace imports: JSONL in chunks of ~256 KiB, enough to amortise per-message cost.
IMPORT_CHUNK_BYTES = 256 * 1024


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def trace_filter(
    *,
    source: str | None = None,
    meta: Mapping[str, str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> trace_pb2.TraceFilter:
    """A TraceFilter from keyword conditions; all given conditions must hold."""
    return trace_pb2.TraceFilter(
        source=source or "",
        meta=[trace_pb2.MetaCondition(key=k, value=v) for k, v in (meta or {}).items()],
        create_time_after=_timestamp(created_after),
        create_time_before=_timestamp(created_before),
    )


class TraceCalls(RegistryCalls):
    """Traces: create, import (streamed JSONL), get, list, delete; datasets: create from traces,
    get, list, delete, export (streamed records)."""

    # Traces.

    def create_trace(
        self, trace: trace_pb2.Trace, *, request_id: str | None = None
    ) -> trace_pb2.Trace:
        request = pb.CreateTraceRequest(trace=trace, request_id=request_id_or_new(request_id))
        response: pb.CreateTraceResponse = self._stub.CreateTrace(request, timeout=self.timeout)
        return response.trace

    def import_traces(
        self,
        data: Path | str | Iterable[str | bytes],
        *,
        atomic: bool = False,
        source: str = "",
        chunk_size: int = IMPORT_CHUNK_BYTES,
        progress: Progress | None = None,
        request_id: str | None = None,
    ) -> pb.ImportTracesResponse:
        """Streams JSONL traces to the registry: a file (a `str` is a path) or an iterable of
        lines, read lazily in chunks of `chunk_size` bytes, so its length is not limited. Bad
        lines come back in `errors` by line number; with `atomic`, any bad line stores nothing.
        `progress` is called with each chunk's byte count as it is sent.

        Safe to repeat: the registry stores only the traces `source` does not hold yet, so calling
        this again after a failure (with a new or no `request_id`) stores the rest;
        `new_count` says how many this call stored, `imported_count - new_count` were there."""
        if isinstance(data, str | Path):
            chunks = file_chunks(Path(data), chunk_size, progress)
        else:
            chunks = line_chunks(data, chunk_size, progress)
        options = pb.ImportOptions(
            atomic=atomic, source=source, request_id=request_id_or_new(request_id)
        )

        def requests() -> Iterator[pb.ImportTracesRequest]:
            yield pb.ImportTracesRequest(options=options)
            for chunk in chunks:
                yield pb.ImportTracesRequest(data=chunk)

        response: pb.ImportTracesResponse = self._stub.ImportTraces(
            requests(), timeout=self.stream_timeout
        )
        return response

    def get_trace(self, name: str) -> trace_pb2.Trace:
        request = pb.GetTraceRequest(name=names.trace(name))
        response: pb.GetTraceResponse = self._stub.GetTrace(request, timeout=self.timeout)
        return response.trace

    def list_traces(
        self,
        *,
        source: str | None = None,
        meta: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[trace_pb2.Trace]:
        """Traces matching every given condition, oldest first."""
        condition = trace_filter(
            source=source, meta=meta, created_after=created_after, created_before=created_before
        )

        def fetch(token: str) -> tuple[Sequence[trace_pb2.Trace], str]:
            request = pb.ListTracesRequest(
                filter=condition, page_size=capped_page_size(page_size, limit), page_token=token
            )
            response: pb.ListTracesResponse = self._stub.ListTraces(request, timeout=self.timeout)
            return response.traces, response.next_page_token

        return pages(fetch, limit)

    def delete_trace(self, name: str) -> None:
        self._stub.DeleteTrace(pb.DeleteTraceRequest(name=names.trace(name)), timeout=self.timeout)

    # Datasets.

    def create_dataset(
        self,
        dataset_id: str,
        *,
        source: str | None = None,
        meta: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        trace_names: Sequence[str] | None = None,
        eval_fraction: float = 0.1,
        seed: int = 0,
        description: str = "",
        request_id: str | None = None,
    ) -> dataset_pb2.Dataset:
        """A dataset of the named traces (in that order) when `trace_names` is given, otherwise of
        the traces matching the filter (no conditions: every trace)."""
        request = pb.CreateDatasetRequest(
            dataset_id=dataset_id.removeprefix("datasets/"),
            description=description,
            # Always sent in full: proto3 cannot tell an unset eval_fraction from 0.0.
            split=dataset_pb2.SplitConfig(eval_fraction=eval_fraction, seed=seed),
            request_id=request_id_or_new(request_id),
        )
        if trace_names is not None:
            request.trace_names.names.extend(names.trace(n) for n in trace_names)
        else:
            request.filter.CopyFrom(
                trace_filter(
                    source=source,
                    meta=meta,
                    created_after=created_after,
                    created_before=created_before,
                )
            )
        response: pb.CreateDatasetResponse = self._stub.CreateDataset(request, timeout=self.timeout)
        return response.dataset

    def get_dataset(self, name: str) -> dataset_pb2.Dataset:
        request = pb.GetDatasetRequest(name=names.dataset(name))
        response: pb.GetDatasetResponse = self._stub.GetDataset(request, timeout=self.timeout)
        return response.dataset

    def list_datasets(
        self, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dataset_pb2.Dataset]:
        def fetch(token: str) -> tuple[Sequence[dataset_pb2.Dataset], str]:
            request = pb.ListDatasetsRequest(
                page_size=capped_page_size(page_size, limit), page_token=token
            )
            response: pb.ListDatasetsResponse = self._stub.ListDatasets(
                request, timeout=self.timeout
            )
            return response.datasets, response.next_page_token

        return pages(fetch, limit)

    def delete_dataset(self, name: str) -> None:
        request = pb.DeleteDatasetRequest(name=names.dataset(name))
        self._stub.DeleteDataset(request, timeout=self.timeout)

    def export_dataset(
        self,
        name: str,
        *,
        split: dataset_pb2.DatasetSplit = dataset_pb2.DATASET_SPLIT_ALL,
        format: dataset_pb2.ExportFormat = dataset_pb2.EXPORT_FORMAT_RAW,
        chat_template: str = "",
    ) -> Iterator[dataset_pb2.DatasetRecord]:
        """The dataset's records in order (train first for both splits), as the server streams
        them; `chat_template` applies to EXPORT_FORMAT_SFT."""
        request = pb.ExportDatasetRequest(
            name=names.dataset(name), split=split, format=format, chat_template=chat_template
        )
        responses: Iterable[pb.ExportDatasetResponse] = self._stub.ExportDataset(
            request, timeout=self.stream_timeout
        )
        for response in responses:
            yield from response.records
