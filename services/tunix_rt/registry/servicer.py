"""The RegistryService servicer: proto in → domain call (on a worker thread) → proto out.

Domain errors propagate as `TunixError`; the shared error interceptor turns them into statuses.
Blocking work (the database, the blob store) runs in `asyncio.to_thread`, so the event loop keeps
serving other calls.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.common.rendering import CHAT_TEMPLATES, render_prompt, render_target
from tunix_rt.registry import convert, runs
from tunix_rt.registry import datasets as ds
from tunix_rt.registry import traces as tr
from tunix_rt.registry.blob_store import check_digest
from tunix_rt.registry.names import parse
from tunix_rt.registry.registry import Registry
from tunix_rt.v1 import dataset_pb2, registry_service_pb2_grpc
from tunix_rt.v1 import registry_service_pb2 as pb

# Records per ExportDataset message: fewer, larger messages stream faster than one per trace.
EXPORT_BATCH = 64
MAX_CHUNK = 4 << 20
DEFAULT_CHUNK = 1 << 20
# Artifact names carry a digest; check_digest gives the precise error, so parse accepts anything.
_ANY = re.compile(r"^.+$")
_SPLIT_NAMES = {1: dataset_pb2.DATASET_SPLIT_TRAIN, 2: dataset_pb2.DATASET_SPLIT_EVAL}
# The artifacts.content_type column is VARCHAR(128).
MAX_CONTENT_TYPE = 128


def _run_state(value: int, field: str) -> runs.RunState:
    """A RunState from a proto enum number; an unknown number (proto3 enums are open) is
    INVALID_ARGUMENT."""
    try:
        return runs.RunState(value)
    except ValueError:
        raise InvalidArgument.field(field, f"{value} is not a RunState") from None


def _split_jsonl(chunks: list[bytes]) -> Iterator[tuple[int, bytes]]:
    """Numbers the lines of concatenated chunks, 1-based; a final line needs no newline."""
    yield from enumerate(b"".join(chunks).split(b"\n"), start=1)


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    """Serves tunix_rt.v1.RegistryService over a Registry."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    # Traces.

    async def CreateTrace(self, request: pb.CreateTraceRequest, context: Any) -> Any:
        content = tr.validate(
            convert.trace_raw(request.trace, "trace."), prefix="trace.", source=request.trace.source
        )
        (uid,) = await asyncio.to_thread(
            self._registry.create_traces, [content], request.request_id
        )
        trace = await asyncio.to_thread(self._registry.get_trace, f"traces/{uid}")
        return pb.CreateTraceResponse(trace=convert.trace_to_proto(trace))

    async def BatchCreateTraces(self, request: pb.BatchCreateTracesRequest, context: Any) -> Any:
        if not request.traces:
            raise InvalidArgument.field("traces", "must hold at least one trace")
        contents = [
            tr.validate(
                convert.trace_raw(t, f"traces[{n}]."), prefix=f"traces[{n}].", source=t.source
            )
            for n, t in enumerate(request.traces)
        ]
        uids = await asyncio.to_thread(self._registry.create_traces, contents, request.request_id)
        stored = await asyncio.to_thread(self._registry.repo.get_traces, uids)
        return pb.BatchCreateTracesResponse(traces=[convert.trace_to_proto(t) for t in stored])

    async def ImportTraces(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        options: pb.ImportOptions | None = None
        chunks: list[bytes] = []
        async for message in request_iterator:
            if options is None:
                options = message.options
            chunks.append(message.data)
        options = options or pb.ImportOptions()
        report = await asyncio.to_thread(
            self._registry.import_lines,
            _split_jsonl(chunks),
            atomic=options.atomic,
            source=options.source,
            request_id=options.request_id,
        )
        return pb.ImportTracesResponse(
            imported_count=len(report.trace_uids),
            line_count=report.line_count,
            errors=[
                pb.ImportError(line=line, field=field, message=f"{field}: {message}")
                for line, field, message in report.errors
            ],
            rejected=report.rejected,
            trace_names=[f"traces/{uid}" for uid in report.trace_uids],
        )

    async def GetTrace(self, request: pb.GetTraceRequest, context: Any) -> Any:
        # A point read by unique key takes ~0.1 ms, less than the hop to a worker thread and
        # back, so it runs inline on the event loop (measured in bench/registry.py).
        trace = self._registry.get_trace(request.name)
        return pb.GetTraceResponse(trace=convert.trace_to_proto(trace))

    async def ListTraces(self, request: pb.ListTracesRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_traces,
            convert.filter_from_proto(request.filter),
            request.page_size,
            request.page_token,
        )
        return pb.ListTracesResponse(
            traces=[convert.trace_to_proto(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteTrace(self, request: pb.DeleteTraceRequest, context: Any) -> Any:
        await asyncio.to_thread(self._registry.delete_trace, request.name)
        return pb.DeleteTraceResponse()

    # Datasets.

    async def CreateDataset(self, request: pb.CreateDatasetRequest, context: Any) -> Any:
        which = request.WhichOneof("source")
        dataset = await asyncio.to_thread(
            self._registry.create_dataset,
            request.dataset_id,
            request.description,
            convert.filter_from_proto(request.filter) if which == "filter" else None,
            list(request.trace_names.names) if which == "trace_names" else None,
            ds.SplitConfig(
                request.split.eval_fraction if request.HasField("split") else 0.1,
                request.split.seed,
            ),
            request.request_id,
        )
        return pb.CreateDatasetResponse(dataset=convert.dataset_to_proto(dataset))

    async def GetDataset(self, request: pb.GetDatasetRequest, context: Any) -> Any:
        dataset = await asyncio.to_thread(self._registry.get_dataset, request.name)
        return pb.GetDatasetResponse(dataset=convert.dataset_to_proto(dataset))

    async def ListDatasets(self, request: pb.ListDatasetsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_datasets, request.page_size, request.page_token
        )
        return pb.ListDatasetsResponse(
            datasets=[convert.dataset_to_proto(d) for d in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteDataset(self, request: pb.DeleteDatasetRequest, context: Any) -> Any:
        await asyncio.to_thread(self._registry.delete_dataset, request.name)
        return pb.DeleteDatasetResponse()

    async def ExportDataset(
        self, request: pb.ExportDatasetRequest, context: Any
    ) -> AsyncIterator[Any]:
        template = request.chat_template or "plain"
        if template not in CHAT_TEMPLATES:
            raise InvalidArgument.field(
                "chat_template", f"must be one of {', '.join(sorted(CHAT_TEMPLATES))}"
            )
        sft = request.format == dataset_pb2.EXPORT_FORMAT_SFT
        batches = await asyncio.to_thread(
            self._registry.export_dataset, request.name, int(request.split)
        )
        index = 0
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                return
            records = []
            for split, trace in batch:
                record = dataset_pb2.DatasetRecord(index=index, split=_SPLIT_NAMES[split])
                if sft:
                    c = trace.content
                    record.sft_example.CopyFrom(
                        dataset_pb2.SftExample(
                            trace=f"traces/{trace.uid}",
                            prompt=render_prompt(c.prompt, template),
                            target=render_target([s.content for s in c.steps], c.final_answer),
                            split=_SPLIT_NAMES[split],
                        )
                    )
                else:
                    record.trace.CopyFrom(convert.trace_to_proto(trace))
                records.append(record)
                index += 1
            for start in range(0, len(records), EXPORT_BATCH):
                yield pb.ExportDatasetResponse(records=records[start : start + EXPORT_BATCH])

    # Runs.

    async def CreateRun(self, request: pb.CreateRunRequest, context: Any) -> Any:
        run = await asyncio.to_thread(
            self._registry.create_run,
            convert.run_from_proto(request.run),
            request.run_id,
            request.request_id,
        )
        return pb.CreateRunResponse(run=convert.run_to_proto(run))

    async def GetRun(self, request: pb.GetRunRequest, context: Any) -> Any:
        run = await asyncio.to_thread(self._registry.get_run, request.name)
        return pb.GetRunResponse(run=convert.run_to_proto(run))

    async def ListRuns(self, request: pb.ListRunsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_runs,
            [_run_state(s, f"states[{n}]") for n, s in enumerate(request.states)],
            request.owner,
            request.dataset,
            request.page_size,
            request.page_token,
        )
        return pb.ListRunsResponse(
            runs=[convert.run_to_proto(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def TransitionRun(self, request: pb.TransitionRunRequest, context: Any) -> Any:
        run = await asyncio.to_thread(
            self._registry.transition_run,
            request.name,
            _run_state(request.state, "state"),
            _run_state(request.expected_state, "expected_state")
            if request.expected_state
            else None,
            convert.devices_from_proto(request.devices) if request.HasField("devices") else None,
            request.reason,
            request.owner,
            convert.from_struct(request.config_update, "config_update"),
        )
        return pb.TransitionRunResponse(run=convert.run_to_proto(run))

    async def AppendRunEvents(self, request: pb.AppendRunEventsRequest, context: Any) -> Any:
        received = datetime.now(UTC)
        events = [convert.event_from_proto(e, received) for e in request.events]
        appended, last = await asyncio.to_thread(
            self._registry.append_run_events, request.run, events
        )
        return pb.AppendRunEventsResponse(appended_count=appended, last_sequence=last)

    async def ListRunEvents(self, request: pb.ListRunEventsRequest, context: Any) -> Any:
        events, token, last = await asyncio.to_thread(
            self._registry.list_run_events,
            request.run,
            request.from_sequence,
            request.page_size,
            request.page_token,
        )
        return pb.ListRunEventsResponse(
            events=[convert.event_to_proto(e) for e in events],
            next_page_token=token,
            last_sequence=last,
        )

    async def CreateCheckpoint(self, request: pb.CreateCheckpointRequest, context: Any) -> Any:
        cp = request.checkpoint
        checkpoint = await asyncio.to_thread(
            self._registry.create_checkpoint,
            request.run,
            cp.step,
            cp.uri,
            dict(cp.metrics),
            convert.from_timestamp(cp.create_time, cp.HasField("create_time")),
        )
        return pb.CreateCheckpointResponse(checkpoint=convert.checkpoint_to_proto(checkpoint))

    async def ListCheckpoints(self, request: pb.ListCheckpointsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_checkpoints, request.run, request.page_size, request.page_token
        )
        return pb.ListCheckpointsResponse(
            checkpoints=[convert.checkpoint_to_proto(c) for c in page.items],
            next_page_token=page.next_page_token,
        )

    # Models.

    async def CreateModel(self, request: pb.CreateModelRequest, context: Any) -> Any:
        model = await asyncio.to_thread(
            self._registry.create_model,
            request.model_id,
            request.description,
            dict(request.labels),
            request.request_id,
        )
        return pb.CreateModelResponse(model=convert.model_to_proto(model))

    async def GetModel(self, request: pb.GetModelRequest, context: Any) -> Any:
        model = await asyncio.to_thread(self._registry.get_model, request.name)
        return pb.GetModelResponse(model=convert.model_to_proto(model))

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_models, request.page_size, request.page_token
        )
        return pb.ListModelsResponse(
            models=[convert.model_to_proto(m) for m in page.items],
            next_page_token=page.next_page_token,
        )

    async def CreateModelVersion(self, request: pb.CreateModelVersionRequest, context: Any) -> Any:
        version = await asyncio.to_thread(
            self._registry.create_model_version,
            request.parent,
            convert.version_from_proto(request.model_version),
            list(request.aliases),
            request.request_id,
        )
        return pb.CreateModelVersionResponse(model_version=convert.version_to_proto(version))

    async def GetModelVersion(self, request: pb.GetModelVersionRequest, context: Any) -> Any:
        version = await asyncio.to_thread(self._registry.get_model_version, request.name)
        return pb.GetModelVersionResponse(model_version=convert.version_to_proto(version))

    async def ListModelVersions(self, request: pb.ListModelVersionsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_model_versions,
            request.parent,
            request.page_size,
            request.page_token,
        )
        return pb.ListModelVersionsResponse(
            model_versions=[convert.version_to_proto(v) for v in page.items],
            next_page_token=page.next_page_token,
        )

    async def SetModelAlias(self, request: pb.SetModelAliasRequest, context: Any) -> Any:
        model, previous = await asyncio.to_thread(
            self._registry.set_alias, request.model, request.alias, request.version
        )
        return pb.SetModelAliasResponse(
            model=convert.model_to_proto(model), previous_version=previous
        )

    async def DeleteModelAlias(self, request: pb.DeleteModelAliasRequest, context: Any) -> Any:
        model = await asyncio.to_thread(self._registry.delete_alias, request.model, request.alias)
        return pb.DeleteModelAliasResponse(model=convert.model_to_proto(model))

    async def ResolveModelVersion(
        self, request: pb.ResolveModelVersionRequest, context: Any
    ) -> Any:
        version = await asyncio.to_thread(self._registry.resolve, request.reference)
        return pb.ResolveModelVersionResponse(model_version=convert.version_to_proto(version))

    # Artifacts.

    async def UploadArtifact(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        header: pb.ArtifactHeader | None = None
        pending = self._registry.blobs.begin()
        try:
            async for message in request_iterator:
                part = message.WhichOneof("part")
                if header is None:
                    if part != "header":
                        raise InvalidArgument.field("header", "must be the first message")
                    header = message.header
                    if header.sha256:
                        check_digest(header.sha256, "header.sha256")
                    if len(header.content_type) > MAX_CONTENT_TYPE or "\x00" in header.content_type:
                        raise InvalidArgument.field(
                            "header.content_type", f"needs at most {MAX_CONTENT_TYPE} chars, no NUL"
                        )
                    if header.size_bytes < 0:
                        raise InvalidArgument.field("header.size_bytes", "must not be negative")
                    continue
                if part != "chunk":
                    raise InvalidArgument.field("header", "may only be sent once, first")
                if len(message.chunk) > MAX_CHUNK:
                    raise InvalidArgument.field("chunk", "must be at most 4 MiB")
                pending.write(message.chunk)
            if header is None:
                raise InvalidArgument.field("header", "is required")
            if header.sha256 and header.sha256 != pending.sha256:
                raise InvalidArgument.field(
                    "header.sha256",
                    f"does not match the content (got sha256 {pending.sha256})",
                )
            if header.size_bytes and header.size_bytes != pending.size:
                raise InvalidArgument.field(
                    "header.size_bytes", f"is {header.size_bytes}, content is {pending.size} bytes"
                )
            fresh_bytes = await asyncio.to_thread(pending.commit)
        except BaseException:
            pending.discard()
            raise
        values, fresh_row = await asyncio.to_thread(
            self._registry.repo.record_artifact, pending.sha256, pending.size, header.content_type
        )
        return pb.UploadArtifactResponse(
            artifact=convert.artifact_to_proto(*values),
            deduplicated=not (fresh_bytes or fresh_row),
        )

    async def GetArtifact(self, request: pb.GetArtifactRequest, context: Any) -> Any:
        sha = check_digest(parse(request.name, "artifacts", "name", _ANY), "name")
        values = await asyncio.to_thread(self._registry.repo.get_artifact, sha)
        return pb.GetArtifactResponse(artifact=convert.artifact_to_proto(*values))

    async def DownloadArtifact(
        self, request: pb.DownloadArtifactRequest, context: Any
    ) -> AsyncIterator[Any]:
        sha = check_digest(parse(request.name, "artifacts", "name", _ANY), "name")
        _sha, size, _type, _created = await asyncio.to_thread(self._registry.repo.get_artifact, sha)
        if not 0 <= request.offset <= size:
            raise InvalidArgument.field("offset", f"must be within [0, {size}]")
        if not 0 <= request.chunk_size <= MAX_CHUNK:
            raise InvalidArgument.field("chunk_size", "must be at most 4 MiB")
        chunks = self._registry.blobs.read(sha, request.offset, request.chunk_size or DEFAULT_CHUNK)
        offset = request.offset
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield pb.DownloadArtifactResponse(chunk=chunk, offset=offset)
            offset += len(chunk)

    # Evaluations.

    async def CreateEvaluation(self, request: pb.CreateEvaluationRequest, context: Any) -> Any:
        e = request.evaluation
        evaluation = await asyncio.to_thread(
            self._registry.create_evaluation,
            e.model_version,
            e.dataset,
            int(e.split),
            dict(e.metrics),
            convert.evaluation_config(e),
            [convert.item_from_proto(i, f"items[{n}]") for n, i in enumerate(request.items)],
            request.request_id,
        )
        return pb.CreateEvaluationResponse(evaluation=convert.evaluation_to_proto(evaluation))

    async def GetEvaluation(self, request: pb.GetEvaluationRequest, context: Any) -> Any:
        evaluation = await asyncio.to_thread(self._registry.get_evaluation, request.name)
        return pb.GetEvaluationResponse(evaluation=convert.evaluation_to_proto(evaluation))

    async def ListEvaluations(self, request: pb.ListEvaluationsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_evaluations,
            request.model,
            request.dataset,
            request.page_size,
            request.page_token,
        )
        return pb.ListEvaluationsResponse(
            evaluations=[convert.evaluation_to_proto(e) for e in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListEvaluationItems(
        self, request: pb.ListEvaluationItemsRequest, context: Any
    ) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_evaluation_items,
            request.evaluation,
            request.page_size,
            request.page_token,
        )
        return pb.ListEvaluationItemsResponse(
            items=[convert.item_to_proto(i, d) for i, d in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetLeaderboard(self, request: pb.GetLeaderboardRequest, context: Any) -> Any:
        page, first_rank = await asyncio.to_thread(
            self._registry.leaderboard,
            request.dataset,
            request.metric,
            request.lower_is_better,
            int(request.split),
            request.page_size,
            request.page_token,
        )
        return pb.GetLeaderboardResponse(
            entries=[
                convert.leaderboard_entry(first_rank + n, row) for n, row in enumerate(page.items)
            ],
            next_page_token=page.next_page_token,
        )

    # Eval sets.

    async def CreateEvalSet(self, request: pb.CreateEvalSetRequest, context: Any) -> Any:
        items = [
            convert.eval_set_item_from_proto(item, f"items[{n}]")
            for n, item in enumerate(request.items)
        ]
        eval_set = await asyncio.to_thread(
            self._registry.create_eval_set,
            request.eval_set_id,
            request.eval_set.description,
            items,
            request.request_id,
        )
        return pb.CreateEvalSetResponse(eval_set=convert.eval_set_to_proto(eval_set))

    async def GetEvalSet(self, request: pb.GetEvalSetRequest, context: Any) -> Any:
        eval_set = await asyncio.to_thread(self._registry.get_eval_set, request.name)
        return pb.GetEvalSetResponse(eval_set=convert.eval_set_to_proto(eval_set))

    async def ListEvalSets(self, request: pb.ListEvalSetsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_eval_sets, request.page_size, request.page_token
        )
        return pb.ListEvalSetsResponse(
            eval_sets=[convert.eval_set_to_proto(e) for e in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListEvalSetItems(self, request: pb.ListEvalSetItemsRequest, context: Any) -> Any:
        page = await asyncio.to_thread(
            self._registry.list_eval_set_items,
            request.eval_set,
            request.page_size,
            request.page_token,
        )
        return pb.ListEvalSetItemsResponse(
            items=[convert.eval_set_item_to_proto(i) for i in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteEvalSet(self, request: pb.DeleteEvalSetRequest, context: Any) -> Any:
        await asyncio.to_thread(self._registry.delete_eval_set, request.name)
        return pb.DeleteEvalSetResponse()
