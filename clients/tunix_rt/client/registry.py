"""RegistryClient: a typed Python client of the tunix-rt registry service.

A thin layer over the generated `RegistryServiceStub`: it takes ids or full names, fills request
ids, iterates pages and streams, applies default deadlines, and cuts files into chunks. Anything it
does not wrap is one call away on `client.stub`. Failed calls raise `grpc.RpcError`;
`errors.describe_rpc_error` makes them readable.

    with RegistryClient.connect("127.0.0.1:50051") as registry:
        result = registry.import_traces(Path("traces.jsonl"), source="seed")
        dataset = registry.create_dataset("seed-v1", source="seed", eval_fraction=0.1)
        for record in registry.export_dataset("seed-v1"):
            ...
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from tunix_rt.client import names
from tunix_rt.client.channel import DEFAULT_REGISTRY_ADDRESS, REGISTRY_ENV, idempotent_methods
from tunix_rt.client.chunks import Progress, file_chunks, file_sha256, line_chunks, split_bytes
from tunix_rt.client.errors import IntegrityError
from tunix_rt.client.service_client import Endpoint, ServiceClient
from tunix_rt.v1 import (
    artifact_pb2,
    dataset_pb2,
    eval_set_pb2,
    evaluation_pb2,
    model_pb2,
    run_pb2,
    trace_pb2,
)
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1.registry_service_pb2_grpc import RegistryServiceStub

REGISTRY_SERVICE = "tunix_rt.v1.RegistryService"

# Safe to send twice for reasons the method names do not show (see channel.idempotent_methods for
# the rule that covers reads and creates with a request_id). SetModelAlias is deliberately absent: a
# retry that lands after another client moved the alias would move it back.
REGISTRY_IDEMPOTENT = idempotent_methods(
    pb.DESCRIPTOR.services_by_name["RegistryService"],
    extra={
        # Its request_id travels in the first message's options; import_traces always sets one.
        # gRPC replays a client stream only while it fits the per-call retry buffer (256 KiB by
        # default), so a large import is retried only if it fails before that much was sent.
        "ImportTraces",
        # Content-addressed: the same bytes are stored once, so a second upload changes nothing.
        "UploadArtifact",
        # Events whose sequence is already stored are skipped.
        "AppendRunEvents",
        # Recording the same step again replaces it with the same values.
        "CreateCheckpoint",
    },
)

# A unary call that takes longer than this has hung: fail it rather than the user's patience.
DEFAULT_TIMEOUT_S = 30.0
# Streams (imports, exports, downloads) last as long as their data does: no deadline by default.
DEFAULT_STREAM_TIMEOUT_S: float | None = None
# Trace imports: JSONL in chunks of ~256 KiB, enough to amortise per-message cost.
IMPORT_CHUNK_BYTES = 256 * 1024
# Artifact chunks: 1 MiB, the server's default download chunk and well under its 4 MiB limit.
ARTIFACT_CHUNK_BYTES = 1024 * 1024
# List page size: large enough for few round trips, small enough that a page of big traces (up to
# 1 MiB each) stays far below the 64 MiB message limit.
DEFAULT_PAGE_SIZE = 100
# A download that breaks mid-stream resumes from the bytes it has, this many times.
DOWNLOAD_RESUMES = 3

T = TypeVar("T")


def _pages(fetch: Callable[[str], tuple[Sequence[T], str]], limit: int | None) -> Iterator[T]:
    """Items of consecutive pages until the last page or `limit` items."""
    token, count = "", 0
    while True:
        items, token = fetch(token)
        for item in items:
            if limit is not None and count >= limit:
                return
            yield item
            count += 1
        if not token:
            return


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


def _request_id(request_id: str | None) -> str:
    # A fresh id per logical call makes the create safe to retry (see REGISTRY_IDEMPOTENT).
    return request_id or uuid.uuid4().hex


class RegistryClient(ServiceClient[RegistryServiceStub]):
    """The registry's API with ids or names, default deadlines, paging and chunked streams.

    Unary calls get `timeout` seconds, streams `stream_timeout` (None: no deadline). List methods
    return lazy iterators: the first page is requested when iteration starts.
    """

    ENDPOINT = Endpoint(
        REGISTRY_SERVICE, REGISTRY_ENV, DEFAULT_REGISTRY_ADDRESS, REGISTRY_IDEMPOTENT
    )

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT_S,
    ) -> None:
        super().__init__(channel, timeout=timeout, stream_timeout=stream_timeout)
        self._stub = RegistryServiceStub(channel)  # type: ignore[no-untyped-call]

    # Traces.

    def create_trace(
        self, trace: trace_pb2.Trace, *, request_id: str | None = None
    ) -> trace_pb2.Trace:
        request = pb.CreateTraceRequest(trace=trace, request_id=_request_id(request_id))
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
        lines. Bad lines come back in `errors` by line number; with `atomic`, any bad line stores
        nothing. `progress` is called with each chunk's byte count as it is sent."""
        if isinstance(data, str | Path):
            chunks = file_chunks(Path(data), chunk_size, progress)
        else:
            chunks = line_chunks(data, chunk_size, progress)
        options = pb.ImportOptions(atomic=atomic, source=source, request_id=_request_id(request_id))

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
                filter=condition, page_size=_page_size(page_size, limit), page_token=token
            )
            response: pb.ListTracesResponse = self._stub.ListTraces(request, timeout=self.timeout)
            return response.traces, response.next_page_token

        return _pages(fetch, limit)

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
            request_id=_request_id(request_id),
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
                page_size=_page_size(page_size, limit), page_token=token
            )
            response: pb.ListDatasetsResponse = self._stub.ListDatasets(
                request, timeout=self.timeout
            )
            return response.datasets, response.next_page_token

        return _pages(fetch, limit)

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

    # Runs.

    def get_run(self, name: str) -> run_pb2.Run:
        response: pb.GetRunResponse = self._stub.GetRun(
            pb.GetRunRequest(name=names.run(name)), timeout=self.timeout
        )
        return response.run

    def list_runs(
        self,
        *,
        states: Sequence[run_pb2.RunState] = (),
        owner: str = "",
        dataset: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[run_pb2.Run]:
        def fetch(token: str) -> tuple[Sequence[run_pb2.Run], str]:
            request = pb.ListRunsRequest(
                states=states,
                owner=owner,
                dataset=evaluated_on(dataset) if dataset else "",
                page_size=_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListRunsResponse = self._stub.ListRuns(request, timeout=self.timeout)
            return response.runs, response.next_page_token

        return _pages(fetch, limit)

    def list_run_events(
        self, run: str, *, from_sequence: int = 1, limit: int | None = None
    ) -> Iterator[run_pb2.RunEvent]:
        """The run's stored events from `from_sequence`, in order."""

        def fetch(token: str) -> tuple[Sequence[run_pb2.RunEvent], str]:
            request = pb.ListRunEventsRequest(
                run=names.run(run), from_sequence=from_sequence, page_token=token
            )
            response: pb.ListRunEventsResponse = self._stub.ListRunEvents(
                request, timeout=self.timeout
            )
            return response.events, response.next_page_token

        return _pages(fetch, limit)

    def list_checkpoints(self, run: str) -> Iterator[run_pb2.Checkpoint]:
        def fetch(token: str) -> tuple[Sequence[run_pb2.Checkpoint], str]:
            request = pb.ListCheckpointsRequest(run=names.run(run), page_token=token)
            response: pb.ListCheckpointsResponse = self._stub.ListCheckpoints(
                request, timeout=self.timeout
            )
            return response.checkpoints, response.next_page_token

        return _pages(fetch, None)

    # Models.

    def get_model(self, name: str) -> model_pb2.Model:
        response: pb.GetModelResponse = self._stub.GetModel(
            pb.GetModelRequest(name=names.model(name)), timeout=self.timeout
        )
        return response.model

    def list_models(
        self, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[model_pb2.Model]:
        def fetch(token: str) -> tuple[Sequence[model_pb2.Model], str]:
            request = pb.ListModelsRequest(page_size=_page_size(page_size, limit), page_token=token)
            response: pb.ListModelsResponse = self._stub.ListModels(request, timeout=self.timeout)
            return response.models, response.next_page_token

        return _pages(fetch, limit)

    def list_model_versions(
        self, model: str, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[model_pb2.ModelVersion]:
        """The model's versions, newest first."""

        def fetch(token: str) -> tuple[Sequence[model_pb2.ModelVersion], str]:
            request = pb.ListModelVersionsRequest(
                parent=names.model(model), page_size=_page_size(page_size, limit), page_token=token
            )
            response: pb.ListModelVersionsResponse = self._stub.ListModelVersions(
                request, timeout=self.timeout
            )
            return response.model_versions, response.next_page_token

        return _pages(fetch, limit)

    def get_model_version(self, name: str) -> model_pb2.ModelVersion:
        """A version by full name or `model/version`."""
        request = pb.GetModelVersionRequest(name=names.model_version(name) or name)
        response: pb.GetModelVersionResponse = self._stub.GetModelVersion(
            request, timeout=self.timeout
        )
        return response.model_version

    def set_alias(self, model: str, alias: str, version: int) -> pb.SetModelAliasResponse:
        """Points `alias` at `version`; the response has the model and the previous version."""
        request = pb.SetModelAliasRequest(model=names.model(model), alias=alias, version=version)
        response: pb.SetModelAliasResponse = self._stub.SetModelAlias(request, timeout=self.timeout)
        return response

    def delete_alias(self, model: str, alias: str) -> model_pb2.Model:
        request = pb.DeleteModelAliasRequest(model=names.model(model), alias=alias)
        response: pb.DeleteModelAliasResponse = self._stub.DeleteModelAlias(
            request, timeout=self.timeout
        )
        return response.model

    def create_model_version(
        self,
        model: str,
        artifact: str,
        *,
        provenance: dict[str, Any] | None = None,
        aliases: Sequence[str] = (),
        description: str = "",
        request_id: str | None = None,
    ) -> model_pb2.ModelVersion:
        """A new version of `model` (created when missing) pointing at a stored artifact."""
        version = model_pb2.ModelVersion(artifact=names.artifact(artifact), description=description)
        version.provenance.update(provenance or {})
        request = pb.CreateModelVersionRequest(
            parent=names.model(model),
            model_version=version,
            aliases=list(aliases),
            request_id=_request_id(request_id),
        )
        response: pb.CreateModelVersionResponse = self._stub.CreateModelVersion(
            request, timeout=self.timeout
        )
        return response.model_version

    def resolve(self, reference: str) -> model_pb2.ModelVersion:
        """The version `name@alias`, `name/version`, `name` (latest) or a full name points at."""
        request = pb.ResolveModelVersionRequest(reference=reference)
        response: pb.ResolveModelVersionResponse = self._stub.ResolveModelVersion(
            request, timeout=self.timeout
        )
        return response.model_version

    # Artifacts.

    def upload_artifact(
        self,
        data: Path | str | bytes,
        *,
        content_type: str = "",
        chunk_size: int = ARTIFACT_CHUNK_BYTES,
        progress: Progress | None = None,
    ) -> pb.UploadArtifactResponse:
        """Uploads a file (a `str` is a path) or bytes. The header carries the sha256 and size, so
        the server rejects a corrupted transfer instead of storing it."""
        if isinstance(data, bytes):
            sha256, size = hashlib.sha256(data).hexdigest(), len(data)
            chunks = split_bytes(data, chunk_size, progress)
        else:
            path = Path(data)
            sha256, size = file_sha256(path)
            chunks = file_chunks(path, chunk_size, progress)
        header = pb.ArtifactHeader(sha256=sha256, size_bytes=size, content_type=content_type)

        def requests() -> Iterator[pb.UploadArtifactRequest]:
            yield pb.UploadArtifactRequest(header=header)
            for chunk in chunks:
                yield pb.UploadArtifactRequest(chunk=chunk)

        response: pb.UploadArtifactResponse = self._stub.UploadArtifact(
            requests(), timeout=self.stream_timeout
        )
        return response

    def get_artifact(self, name: str) -> artifact_pb2.Artifact:
        request = pb.GetArtifactRequest(name=names.artifact(name))
        response: pb.GetArtifactResponse = self._stub.GetArtifact(request, timeout=self.timeout)
        return response.artifact

    def iter_artifact(
        self, name: str, *, offset: int = 0, chunk_size: int = ARTIFACT_CHUNK_BYTES
    ) -> Iterator[bytes]:
        """The artifact's content from `offset`, chunk by chunk, as the server streams it."""
        request = pb.DownloadArtifactRequest(
            name=names.artifact(name), offset=offset, chunk_size=chunk_size
        )
        responses: Iterable[pb.DownloadArtifactResponse] = self._stub.DownloadArtifact(
            request, timeout=self.stream_timeout
        )
        expected = offset
        for response in responses:
            if response.offset != expected:
                raise IntegrityError(
                    f"{name}: chunk at offset {response.offset}, expected {expected}"
                )
            expected += len(response.chunk)
            yield response.chunk

    def download_artifact(
        self, name: str, dest: Path | str, *, progress: Progress | None = None
    ) -> artifact_pb2.Artifact:
        """Writes the artifact to `dest`, verified against its sha256.

        The bytes go to `dest.part` first and are renamed into place only when complete and
        verified, so `dest` never holds a partial or corrupt file. A stream that breaks with
        UNAVAILABLE resumes from the bytes already written.
        """
        artifact = self.get_artifact(name)
        target = Path(dest)
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        written = 0
        try:
            with partial.open("wb") as out:
                for attempt in range(DOWNLOAD_RESUMES + 1):
                    try:
                        for chunk in self.iter_artifact(artifact.name, offset=written):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            if progress is not None:
                                progress(len(chunk))
                        break
                    except grpc.RpcError as error:
                        if (
                            error.code() != grpc.StatusCode.UNAVAILABLE
                            or attempt == DOWNLOAD_RESUMES
                        ):
                            raise
            if digest.hexdigest() != artifact.sha256 or written != artifact.size_bytes:
                raise IntegrityError(
                    f"{artifact.name}: got {written} bytes with sha256 {digest.hexdigest()}, "
                    f"expected {artifact.size_bytes} bytes"
                )
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return artifact

    # Evaluations.

    def get_evaluation(self, name: str) -> evaluation_pb2.Evaluation:
        request = pb.GetEvaluationRequest(name=names.evaluation(name))
        response: pb.GetEvaluationResponse = self._stub.GetEvaluation(request, timeout=self.timeout)
        return response.evaluation

    def list_evaluations(
        self,
        *,
        model: str | None = None,
        dataset: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[evaluation_pb2.Evaluation]:
        """Evaluations, newest first; `model` is a model (any version) or `model/version`."""
        model_filter = (names.model_version(model) or names.model(model)) if model else ""

        def fetch(token: str) -> tuple[Sequence[evaluation_pb2.Evaluation], str]:
            request = pb.ListEvaluationsRequest(
                model=model_filter,
                dataset=evaluated_on(dataset) if dataset else "",
                page_size=_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListEvaluationsResponse = self._stub.ListEvaluations(
                request, timeout=self.timeout
            )
            return response.evaluations, response.next_page_token

        return _pages(fetch, limit)

    def list_evaluation_items(
        self, evaluation: str, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[evaluation_pb2.EvaluationItem]:
        def fetch(token: str) -> tuple[Sequence[evaluation_pb2.EvaluationItem], str]:
            request = pb.ListEvaluationItemsRequest(
                evaluation=names.evaluation(evaluation),
                page_size=_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListEvaluationItemsResponse = self._stub.ListEvaluationItems(
                request, timeout=self.timeout
            )
            return response.items, response.next_page_token

        return _pages(fetch, limit)

    def leaderboard(
        self,
        dataset: str,
        metric: str,
        *,
        lower_is_better: bool = False,
        split: dataset_pb2.DatasetSplit = dataset_pb2.DATASET_SPLIT_UNSPECIFIED,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[evaluation_pb2.LeaderboardEntry]:
        """Model versions ranked by `metric` on the dataset, best first."""

        def fetch(token: str) -> tuple[Sequence[evaluation_pb2.LeaderboardEntry], str]:
            request = pb.GetLeaderboardRequest(
                dataset=evaluated_on(dataset),
                metric=metric,
                lower_is_better=lower_is_better,
                split=split,
                page_size=_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.GetLeaderboardResponse = self._stub.GetLeaderboard(
                request, timeout=self.timeout
            )
            return response.entries, response.next_page_token

        return _pages(fetch, limit)

    # Eval sets.

    def create_eval_set(
        self,
        eval_set_id: str,
        items: Sequence[eval_set_pb2.EvalSetItem],
        *,
        description: str = "",
        request_id: str | None = None,
    ) -> eval_set_pb2.EvalSet:
        """Creates an eval set with all its items in one call."""
        request = pb.CreateEvalSetRequest(
            eval_set_id=eval_set_id.removeprefix(EVAL_SETS),
            eval_set=eval_set_pb2.EvalSet(description=description),
            items=items,
            request_id=_request_id(request_id),
        )
        response: pb.CreateEvalSetResponse = self._stub.CreateEvalSet(request, timeout=self.timeout)
        return response.eval_set

    def get_eval_set(self, name: str) -> eval_set_pb2.EvalSet:
        request = pb.GetEvalSetRequest(name=eval_set_name(name))
        response: pb.GetEvalSetResponse = self._stub.GetEvalSet(request, timeout=self.timeout)
        return response.eval_set

    def list_eval_sets(
        self, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[eval_set_pb2.EvalSet]:
        """Eval sets, newest first."""

        def fetch(token: str) -> tuple[Sequence[eval_set_pb2.EvalSet], str]:
            request = pb.ListEvalSetsRequest(
                page_size=_page_size(page_size, limit), page_token=token
            )
            response: pb.ListEvalSetsResponse = self._stub.ListEvalSets(
                request, timeout=self.timeout
            )
            return response.eval_sets, response.next_page_token

        return _pages(fetch, limit)

    def list_eval_set_items(
        self, eval_set: str, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[eval_set_pb2.EvalSetItem]:
        """An eval set's items, in order."""

        def fetch(token: str) -> tuple[Sequence[eval_set_pb2.EvalSetItem], str]:
            request = pb.ListEvalSetItemsRequest(
                eval_set=eval_set_name(eval_set),
                page_size=_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListEvalSetItemsResponse = self._stub.ListEvalSetItems(
                request, timeout=self.timeout
            )
            return response.items, response.next_page_token

        return _pages(fetch, limit)

    def delete_eval_set(self, name: str) -> None:
        self._stub.DeleteEvalSet(
            pb.DeleteEvalSetRequest(name=eval_set_name(name)), timeout=self.timeout
        )


EVAL_SETS = "evalSets/"


def eval_set_name(name: str) -> str:
    """`evalSets/{id}` for an id or a full name."""
    return names.full_name("evalSets", name)


def evaluated_on(name: str) -> str:
    """What evaluations are on: an eval set name (`evalSets/...`) as is, else a dataset name."""
    return name.strip() if name.strip().startswith(EVAL_SETS) else names.dataset(name)


def _page_size(page_size: int, limit: int | None) -> int:
    # Never ask for more than the caller will read.
    return max(1, min(page_size, limit)) if limit else page_size
