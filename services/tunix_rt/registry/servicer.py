"""The RegistryService servicer: proto in → use case (on a worker thread) → proto out.

Nothing else happens here: the use cases (`use_cases/`, reached through `Registry`) hold every
rule, and `convert` every mapping between messages and domain objects. Domain errors propagate as
`TunixError`; the shared error interceptor turns them into statuses. Blocking work (the database,
the blob store) runs on the servicer's own threads (`common.blocking`), so the event loop keeps
serving other calls, and services sharing the process cannot take those threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from tunix_rt.common.blocking import BlockingPool
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.registry import convert
from tunix_rt.registry.registry import Registry
from tunix_rt.registry.trace_responses import TraceResponses, cache_bytes_from_env
from tunix_rt.registry.use_cases.artifacts import Upload
from tunix_rt.registry.use_cases.trace_import import TraceImport
from tunix_rt.v1 import dataset_pb2, registry_service_pb2_grpc
from tunix_rt.v1 import registry_service_pb2 as pb

# Records per ExportDataset message: fewer, larger messages stream faster than one per trace.
EXPORT_BATCH = 64


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    """Serves tunix_rt.v1.RegistryService over a Registry."""

    def __init__(self, registry: Registry, trace_cache_bytes: int | None = None) -> None:
        self._registry = registry
        self._blocking = BlockingPool("registry")
        self._trace_responses = TraceResponses(
            cache_bytes_from_env() if trace_cache_bytes is None else trace_cache_bytes
        )

    # Traces.

    async def CreateTrace(self, request: pb.CreateTraceRequest, context: Any) -> Any:
        content = convert.trace_from_proto(request.trace, "trace.")
        trace = await self._blocking.run(
            self._registry.traces.create_trace, content, request.request_id
        )
        return pb.CreateTraceResponse(trace=convert.trace_to_proto(trace))

    async def BatchCreateTraces(self, request: pb.BatchCreateTracesRequest, context: Any) -> Any:
        contents = [
            convert.trace_from_proto(t, f"traces[{n}].") for n, t in enumerate(request.traces)
        ]
        stored = await self._blocking.run(
            self._registry.traces.batch_create_traces, contents, request.request_id
        )
        return pb.BatchCreateTracesResponse(traces=[convert.trace_to_proto(t) for t in stored])

    async def ImportTraces(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        # Each chunk is read (and a full batch stored) as it arrives, not after the whole stream:
        # the import holds one batch and one unfinished line, however long the stream.
        trace_import: TraceImport | None = None
        async for message in request_iterator:
            if trace_import is None:
                trace_import = await self._blocking.run(self._start_import, message.options)
            if message.data:
                await self._blocking.run(trace_import.feed, message.data)
        if trace_import is None:
            trace_import = await self._blocking.run(self._start_import, pb.ImportOptions())
        report = await self._blocking.run(trace_import.finish)
        return pb.ImportTracesResponse(
            imported_count=len(report.trace_uids),
            new_count=report.new_count,
            line_count=report.line_count,
            errors=[
                pb.ImportError(line=line, field=field, message=f"{field}: {message}")
                for line, field, message in report.errors
            ],
            rejected=report.rejected,
            trace_names=[f"traces/{uid}" for uid in report.trace_uids],
        )

    def _start_import(self, options: pb.ImportOptions) -> TraceImport:
        return self._registry.traces.import_traces(
            atomic=options.atomic, source=options.source, request_id=options.request_id
        )

    async def GetTrace(self, request: pb.GetTraceRequest, context: Any) -> Any:
        # A point read by unique key takes ~0.1 ms, less than the hop to a worker thread and
        # back, so it runs inline on the event loop (measured in bench/registry.py). A trace read
        # before is served from its kept response once its row is seen to exist (trace_responses).
        traces = self._registry.traces
        uid = traces.uid_of(request.name)
        kept = self._trace_responses.get(uid)
        if kept is not None:
            if traces.exists(uid):
                return pb.GetTraceResponse.FromString(kept)
            self._trace_responses.drop(uid)  # deleted (here or through another replica)
        response = pb.GetTraceResponse(trace=convert.trace_to_proto(traces.get_trace(request.name)))
        if self._trace_responses.max_bytes:
            self._trace_responses.put(uid, response.SerializeToString())
        return response

    async def ListTraces(self, request: pb.ListTracesRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.traces.list_traces,
            convert.filter_from_proto(request.filter),
            request.page_size,
            request.page_token,
        )
        return pb.ListTracesResponse(
            traces=[convert.trace_to_proto(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteTrace(self, request: pb.DeleteTraceRequest, context: Any) -> Any:
        await self._blocking.run(self._registry.traces.delete_trace, request.name)
        self._trace_responses.drop(self._registry.traces.uid_of(request.name))
        return pb.DeleteTraceResponse()

    # Datasets.

    async def CreateDataset(self, request: pb.CreateDatasetRequest, context: Any) -> Any:
        which = request.WhichOneof("source")
        dataset = await self._blocking.run(
            self._registry.datasets.create_dataset,
            request.dataset_id,
            request.description,
            convert.filter_from_proto(request.filter) if which == "filter" else None,
            list(request.trace_names.names) if which == "trace_names" else None,
            convert.split_config_from_proto(request.split, request.HasField("split")),
            request.request_id,
        )
        return pb.CreateDatasetResponse(dataset=convert.dataset_to_proto(dataset))

    async def GetDataset(self, request: pb.GetDatasetRequest, context: Any) -> Any:
        dataset = await self._blocking.run(self._registry.datasets.get_dataset, request.name)
        return pb.GetDatasetResponse(dataset=convert.dataset_to_proto(dataset))

    async def ListDatasets(self, request: pb.ListDatasetsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.datasets.list_datasets, request.page_size, request.page_token
        )
        return pb.ListDatasetsResponse(
            datasets=[convert.dataset_to_proto(d) for d in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteDataset(self, request: pb.DeleteDatasetRequest, context: Any) -> Any:
        await self._blocking.run(self._registry.datasets.delete_dataset, request.name)
        return pb.DeleteDatasetResponse()

    async def ExportDataset(
        self, request: pb.ExportDatasetRequest, context: Any
    ) -> AsyncIterator[Any]:
        batches = await self._blocking.run(
            self._registry.datasets.export_dataset,
            request.name,
            int(request.split),
            request.chat_template,
            sft=request.format == dataset_pb2.EXPORT_FORMAT_SFT,
        )
        index = 0
        while True:
            batch = await self._blocking.run(next, batches, None)
            if batch is None:
                return
            records = [
                convert.dataset_record(index + n, split, member)
                for n, (split, member) in enumerate(batch)
            ]
            index += len(records)
            for start in range(0, len(records), EXPORT_BATCH):
                yield pb.ExportDatasetResponse(records=records[start : start + EXPORT_BATCH])

    # Runs.

    async def CreateRun(self, request: pb.CreateRunRequest, context: Any) -> Any:
        run = await self._blocking.run(
            self._registry.runs.create_run,
            convert.run_from_proto(request.run),
            request.run_id,
            request.request_id,
        )
        return pb.CreateRunResponse(run=convert.run_to_proto(run))

    async def GetRun(self, request: pb.GetRunRequest, context: Any) -> Any:
        run = await self._blocking.run(self._registry.runs.get_run, request.name)
        return pb.GetRunResponse(run=convert.run_to_proto(run))

    async def ListRuns(self, request: pb.ListRunsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.runs.list_runs,
            [convert.run_state(s, f"states[{n}]") for n, s in enumerate(request.states)],
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
        run = await self._blocking.run(
            self._registry.runs.transition_run,
            request.name,
            convert.run_state(request.state, "state"),
            convert.run_state(request.expected_state, "expected_state")
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
        events = [
            convert.event_from_proto(e, received, f"events[{n}]")
            for n, e in enumerate(request.events)
        ]
        appended, last = await self._blocking.run(
            self._registry.runs.append_run_events, request.run, events
        )
        return pb.AppendRunEventsResponse(appended_count=appended, last_sequence=last)

    async def ListRunEvents(self, request: pb.ListRunEventsRequest, context: Any) -> Any:
        events, token, last = await self._blocking.run(
            self._registry.runs.list_run_events,
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
        checkpoint = await self._blocking.run(
            self._registry.runs.create_checkpoint,
            request.run,
            cp.step,
            cp.uri,
            dict(cp.metrics),
            convert.from_timestamp(
                cp.create_time, cp.HasField("create_time"), "checkpoint.create_time"
            ),
        )
        return pb.CreateCheckpointResponse(checkpoint=convert.checkpoint_to_proto(checkpoint))

    async def ListCheckpoints(self, request: pb.ListCheckpointsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.runs.list_checkpoints, request.run, request.page_size, request.page_token
        )
        return pb.ListCheckpointsResponse(
            checkpoints=[convert.checkpoint_to_proto(c) for c in page.items],
            next_page_token=page.next_page_token,
        )

    # Models.

    async def CreateModel(self, request: pb.CreateModelRequest, context: Any) -> Any:
        model = await self._blocking.run(
            self._registry.models.create_model,
            request.model_id,
            request.description,
            dict(request.labels),
            request.request_id,
        )
        return pb.CreateModelResponse(model=convert.model_to_proto(model))

    async def GetModel(self, request: pb.GetModelRequest, context: Any) -> Any:
        model = await self._blocking.run(self._registry.models.get_model, request.name)
        return pb.GetModelResponse(model=convert.model_to_proto(model))

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.models.list_models, request.page_size, request.page_token
        )
        return pb.ListModelsResponse(
            models=[convert.model_to_proto(m) for m in page.items],
            next_page_token=page.next_page_token,
        )

    async def CreateModelVersion(self, request: pb.CreateModelVersionRequest, context: Any) -> Any:
        version = await self._blocking.run(
            self._registry.models.create_model_version,
            request.parent,
            convert.version_from_proto(request.model_version),
            list(request.aliases),
            request.request_id,
        )
        return pb.CreateModelVersionResponse(model_version=convert.version_to_proto(version))

    async def GetModelVersion(self, request: pb.GetModelVersionRequest, context: Any) -> Any:
        version = await self._blocking.run(self._registry.models.get_model_version, request.name)
        return pb.GetModelVersionResponse(model_version=convert.version_to_proto(version))

    async def ListModelVersions(self, request: pb.ListModelVersionsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.models.list_model_versions,
            request.parent,
            request.page_size,
            request.page_token,
        )
        return pb.ListModelVersionsResponse(
            model_versions=[convert.version_to_proto(v) for v in page.items],
            next_page_token=page.next_page_token,
        )

    async def SetModelAlias(self, request: pb.SetModelAliasRequest, context: Any) -> Any:
        model, previous = await self._blocking.run(
            self._registry.models.set_model_alias, request.model, request.alias, request.version
        )
        return pb.SetModelAliasResponse(
            model=convert.model_to_proto(model), previous_version=previous
        )

    async def DeleteModelAlias(self, request: pb.DeleteModelAliasRequest, context: Any) -> Any:
        model = await self._blocking.run(
            self._registry.models.delete_model_alias, request.model, request.alias
        )
        return pb.DeleteModelAliasResponse(model=convert.model_to_proto(model))

    async def ResolveModelVersion(
        self, request: pb.ResolveModelVersionRequest, context: Any
    ) -> Any:
        version = await self._blocking.run(
            self._registry.models.resolve_model_version, request.reference
        )
        return pb.ResolveModelVersionResponse(model_version=convert.version_to_proto(version))

    # Artifacts.

    async def UploadArtifact(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        upload: Upload | None = None
        try:
            async for message in request_iterator:
                part = message.WhichOneof("part")
                if upload is None:
                    if part != "header":
                        raise InvalidArgument.field("header", "must be the first message")
                    upload = self._registry.artifacts.upload_artifact(
                        convert.upload_header_from_proto(message.header)
                    )
                elif part != "chunk":
                    raise InvalidArgument.field("header", "may only be sent once, first")
                else:
                    upload.write(message.chunk)
            if upload is None:
                raise InvalidArgument.field("header", "is required")
            artifact, deduplicated = await self._blocking.run(upload.finish)
        except BaseException:
            if upload is not None:
                upload.discard()
            raise
        return pb.UploadArtifactResponse(
            artifact=convert.artifact_to_proto(artifact), deduplicated=deduplicated
        )

    async def GetArtifact(self, request: pb.GetArtifactRequest, context: Any) -> Any:
        artifact = await self._blocking.run(self._registry.artifacts.get_artifact, request.name)
        return pb.GetArtifactResponse(artifact=convert.artifact_to_proto(artifact))

    async def DownloadArtifact(
        self, request: pb.DownloadArtifactRequest, context: Any
    ) -> AsyncIterator[Any]:
        chunks = await self._blocking.run(
            self._registry.artifacts.download_artifact,
            request.name,
            request.offset,
            request.chunk_size,
        )
        while True:
            item = await self._blocking.run(next, chunks, None)
            if item is None:
                return
            offset, chunk = item
            yield pb.DownloadArtifactResponse(chunk=chunk, offset=offset)

    # Evaluations.

    async def CreateEvaluation(self, request: pb.CreateEvaluationRequest, context: Any) -> Any:
        e = request.evaluation
        evaluation = await self._blocking.run(
            self._registry.evaluations.create_evaluation,
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
        evaluation = await self._blocking.run(
            self._registry.evaluations.get_evaluation, request.name
        )
        return pb.GetEvaluationResponse(evaluation=convert.evaluation_to_proto(evaluation))

    async def ListEvaluations(self, request: pb.ListEvaluationsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.evaluations.list_evaluations,
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
        page = await self._blocking.run(
            self._registry.evaluations.list_evaluation_items,
            request.evaluation,
            request.page_size,
            request.page_token,
        )
        return pb.ListEvaluationItemsResponse(
            items=[convert.item_to_proto(i, d) for i, d in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetLeaderboard(self, request: pb.GetLeaderboardRequest, context: Any) -> Any:
        page, first_rank = await self._blocking.run(
            self._registry.evaluations.get_leaderboard,
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
        eval_set = await self._blocking.run(
            self._registry.eval_sets.create_eval_set,
            request.eval_set_id,
            request.eval_set.description,
            items,
            request.request_id,
        )
        return pb.CreateEvalSetResponse(eval_set=convert.eval_set_to_proto(eval_set))

    async def GetEvalSet(self, request: pb.GetEvalSetRequest, context: Any) -> Any:
        eval_set = await self._blocking.run(self._registry.eval_sets.get_eval_set, request.name)
        return pb.GetEvalSetResponse(eval_set=convert.eval_set_to_proto(eval_set))

    async def ListEvalSets(self, request: pb.ListEvalSetsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.eval_sets.list_eval_sets, request.page_size, request.page_token
        )
        return pb.ListEvalSetsResponse(
            eval_sets=[convert.eval_set_to_proto(e) for e in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListEvalSetItems(self, request: pb.ListEvalSetItemsRequest, context: Any) -> Any:
        page = await self._blocking.run(
            self._registry.eval_sets.list_eval_set_items,
            request.eval_set,
            request.page_size,
            request.page_token,
        )
        return pb.ListEvalSetItemsResponse(
            items=[convert.eval_set_item_to_proto(i) for i in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteEvalSet(self, request: pb.DeleteEvalSetRequest, context: Any) -> Any:
        await self._blocking.run(self._registry.eval_sets.delete_eval_set, request.name)
        return pb.DeleteEvalSetResponse()
