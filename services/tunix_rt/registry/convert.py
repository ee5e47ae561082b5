"""Conversion between tunix_rt.v1 messages and the registry's domain objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.rpc import status_pb2

from tunix_rt.common import canonical
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.registry import artifacts as ar
from tunix_rt.registry import datasets as ds
from tunix_rt.registry import eval_sets as es
from tunix_rt.registry import evaluations as ev
from tunix_rt.registry import models as md
from tunix_rt.registry import names, runs
from tunix_rt.registry import traces as tr
from tunix_rt.v1 import (
    artifact_pb2,
    dataset_pb2,
    eval_set_pb2,
    evaluation_pb2,
    model_pb2,
    registry_service_pb2,
    run_pb2,
    trace_pb2,
)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


# google.protobuf.Timestamp's documented range, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z,
# which is also Python's datetime range: anything outside cannot be converted (ValueError).
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
_NANOS_PER_SECOND = 1_000_000_000


def from_timestamp(stamp: timestamp_pb2.Timestamp, present: bool, field: str) -> datetime | None:
    """A Timestamp from a request as an aware UTC datetime (None when absent). Every timestamp a
    request carries comes in through here: one outside the Timestamp range, or with nanos outside
    [0, 1e9), is INVALID_ARGUMENT naming `field` (protobuf's own check raises ValueError)."""
    if not present:
        return None
    if not MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument.field(
            field,
            f"seconds {stamp.seconds} is outside the Timestamp range "
            "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z",
        )
    if not 0 <= stamp.nanos < _NANOS_PER_SECOND:
        raise InvalidArgument.field(field, f"nanos {stamp.nanos} must be in [0, 999999999]")
    return stamp.ToDatetime(tzinfo=UTC)


def struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message


def from_struct(message: struct_pb2.Struct, field: str = "struct") -> dict[str, Any]:
    """A Struct as JSON-like data; NaN and infinities (not JSON) are INVALID_ARGUMENT on `field`."""
    try:
        data = json_format.MessageToDict(message)
    except (ValueError, json_format.Error) as exc:  # NaN or infinity in a Struct
        raise InvalidArgument.field(field, f"must hold only JSON values: {exc}") from None
    result: dict[str, Any] = canonical.normalize(data)
    return result


# Traces.


def trace_raw(message: trace_pb2.Trace, prefix: str = "") -> dict[str, Any]:
    """A Trace message as the JSON-like dict that traces.validate checks."""
    return {
        "trace_version": message.trace_version,
        "prompt": message.prompt,
        "steps": [{"i": s.i, "type": s.type, "content": s.content} for s in message.steps],
        "final_answer": message.final_answer,
        "meta": from_struct(message.meta, f"{prefix}meta"),
    }


def trace_from_proto(message: trace_pb2.Trace, prefix: str = "") -> tr.TraceContent:
    """A Trace message as validated content; InvalidArgument names bad fields under `prefix`."""
    return tr.validate(trace_raw(message, prefix), prefix=prefix, source=message.source)


def trace_to_proto(trace: tr.Trace) -> trace_pb2.Trace:
    c = trace.content
    return trace_pb2.Trace(
        name=names.trace_name(trace.uid),
        trace_version=c.trace_version,
        prompt=c.prompt,
        steps=[trace_pb2.TraceStep(i=s.i, type=s.type, content=s.content) for s in c.steps],
        final_answer=c.final_answer,
        meta=struct(c.meta),
        source=c.source,
        create_time=timestamp(trace.create_time),
        content_hash=trace.content_hash,
    )


def filter_from_proto(message: trace_pb2.TraceFilter, field: str = "filter") -> ds.TraceFilter:
    return ds.TraceFilter(
        source=message.source,
        meta=tuple((m.key, m.value) for m in message.meta),
        create_time_after=from_timestamp(
            message.create_time_after,
            message.HasField("create_time_after"),
            f"{field}.create_time_after",
        ),
        create_time_before=from_timestamp(
            message.create_time_before,
            message.HasField("create_time_before"),
            f"{field}.create_time_before",
        ),
    )


def filter_to_proto(flt: ds.TraceFilter) -> trace_pb2.TraceFilter:
    return trace_pb2.TraceFilter(
        source=flt.source,
        meta=[trace_pb2.MetaCondition(key=k, value=v) for k, v in flt.meta],
        create_time_after=timestamp(flt.create_time_after),
        create_time_before=timestamp(flt.create_time_before),
    )


# Datasets.

_SPLITS = {ds.TRAIN: dataset_pb2.DATASET_SPLIT_TRAIN, ds.EVAL: dataset_pb2.DATASET_SPLIT_EVAL}


def split_config_from_proto(message: dataset_pb2.SplitConfig, present: bool) -> ds.SplitConfig:
    """The split of a new dataset; an absent one holds out the default eval fraction."""
    fraction = message.eval_fraction if present else ds.DEFAULT_EVAL_FRACTION
    return ds.SplitConfig(fraction, message.seed)


def dataset_record(
    index: int, split: int, member: tr.Trace | ds.SftExample
) -> dataset_pb2.DatasetRecord:
    """One exported member: the trace itself, or its SFT rendering."""
    record = dataset_pb2.DatasetRecord(index=index, split=_SPLITS[split])
    if isinstance(member, ds.SftExample):
        record.sft_example.CopyFrom(
            dataset_pb2.SftExample(
                trace=names.trace_name(member.trace_uid),
                prompt=member.prompt,
                target=member.target,
                split=_SPLITS[split],
                answer=member.answer,
            )
        )
    else:
        record.trace.CopyFrom(trace_to_proto(member))
    return record


def dataset_to_proto(dataset: ds.Dataset) -> dataset_pb2.Dataset:
    stats = dataset_pb2.DatasetStats()
    json_format.ParseDict(dataset.stats, stats)
    return dataset_pb2.Dataset(
        name=names.dataset_name(dataset.dataset_id),
        description=dataset.description,
        filter=filter_to_proto(dataset.filter) if dataset.filter else None,
        split=dataset_pb2.SplitConfig(
            eval_fraction=dataset.split.eval_fraction, seed=dataset.split.seed
        ),
        stats=stats,
        content_hash=dataset.content_hash,
        create_time=timestamp(dataset.create_time),
    )


# Runs.


def run_state(value: int, field: str) -> runs.RunState:
    """A RunState from a proto enum number; an unknown number (proto3 enums are open) is
    INVALID_ARGUMENT."""
    try:
        return runs.RunState(value)
    except ValueError:
        raise InvalidArgument.field(field, f"{value} is not a RunState") from None


def run_from_proto(message: run_pb2.Run) -> runs.Run:
    """The caller-settable fields of a Run; the registry fills in the rest."""
    epoch = datetime.fromtimestamp(0, UTC)
    return runs.Run(
        run_id="",
        display_name=message.display_name,
        dataset=message.dataset,
        config=from_struct(message.config, "run.config"),
        state=runs.RunState.QUEUED,
        devices=devices_from_proto(message.devices) if message.HasField("devices") else None,
        owner=message.owner,
        priority=message.priority,
        error=None,
        labels=dict(message.labels),
        last_sequence=0,
        create_time=epoch,
        start_time=None,
        end_time=None,
        update_time=epoch,
    )


def devices_from_proto(message: run_pb2.DeviceAssignment) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def run_to_proto(run: runs.Run) -> run_pb2.Run:
    message = run_pb2.Run(
        name=names.run_name(run.run_id),
        display_name=run.display_name,
        dataset=run.dataset,
        config=struct(run.config),
        state=cast(run_pb2.RunState, int(run.state)),
        owner=run.owner,
        priority=run.priority,
        create_time=timestamp(run.create_time),
        start_time=timestamp(run.start_time),
        end_time=timestamp(run.end_time),
        update_time=timestamp(run.update_time),
        last_sequence=run.last_sequence,
        labels=run.labels,
    )
    if run.devices is not None:
        json_format.ParseDict(run.devices, message.devices)
    if run.error is not None:
        message.error.CopyFrom(
            status_pb2.Status(code=run.error.get("code", 2), message=run.error.get("message", ""))
        )
    return message


_PAYLOAD_FIELDS = ("metrics", "state_change", "log", "checkpoint_saved")


def event_from_proto(
    message: run_pb2.RunEvent, received: datetime, field: str = "event"
) -> runs.RunEvent:
    kind = message.WhichOneof("payload") or ""
    payload: dict[str, Any] = (
        json_format.MessageToDict(getattr(message, kind), preserving_proto_field_name=True)
        if kind
        else {}
    )
    time = from_timestamp(message.time, message.HasField("time"), f"{field}.time") or received
    return runs.RunEvent(message.sequence, time, message.step, kind, payload)


def event_to_proto(event: runs.RunEvent) -> run_pb2.RunEvent:
    message = run_pb2.RunEvent(sequence=event.sequence, time=timestamp(event.time), step=event.step)
    if event.kind in _PAYLOAD_FIELDS:
        json_format.ParseDict(event.payload, getattr(message, event.kind))
    return message


def checkpoint_to_proto(checkpoint: runs.Checkpoint) -> run_pb2.Checkpoint:
    return run_pb2.Checkpoint(
        name=names.checkpoint_name(checkpoint.run_id, checkpoint.step),
        step=checkpoint.step,
        uri=checkpoint.uri,
        metrics=checkpoint.metrics,
        create_time=timestamp(checkpoint.create_time),
    )


# Models and artifacts.


def model_to_proto(model: md.Model) -> model_pb2.Model:
    return model_pb2.Model(
        name=names.model_name(model.model_id),
        description=model.description,
        aliases=model.aliases,
        latest_version=model.latest_version,
        create_time=timestamp(model.create_time),
        update_time=timestamp(model.update_time),
        labels=model.labels,
    )


def version_from_proto(message: model_pb2.ModelVersion) -> md.ModelVersion:
    epoch = datetime.fromtimestamp(0, UTC)
    return md.ModelVersion(
        model_id="",
        version=0,
        artifact_sha256=message.artifact,
        source_run=message.source_run,
        metrics=dict(message.metrics),
        provenance=from_struct(message.provenance, "model_version.provenance"),
        description=message.description,
        aliases=(),
        create_time=epoch,
    )


def version_to_proto(version: md.ModelVersion) -> model_pb2.ModelVersion:
    return model_pb2.ModelVersion(
        name=names.model_version_name(version.model_id, version.version),
        version=version.version,
        artifact=names.artifact_name(version.artifact_sha256),
        source_run=version.source_run,
        metrics=version.metrics,
        provenance=struct(version.provenance),
        description=version.description,
        aliases=list(version.aliases),
        create_time=timestamp(version.create_time),
    )


def upload_header_from_proto(message: registry_service_pb2.ArtifactHeader) -> ar.UploadHeader:
    return ar.UploadHeader(message.sha256, message.size_bytes, message.content_type)


def artifact_to_proto(artifact: ar.Artifact) -> artifact_pb2.Artifact:
    return artifact_pb2.Artifact(
        name=names.artifact_name(artifact.sha256),
        sha256=artifact.sha256,
        size_bytes=artifact.size_bytes,
        content_type=artifact.content_type,
        create_time=timestamp(artifact.create_time),
    )


# Evaluations.


# Where an evaluation's regression gate outcome is kept inside its stored config.
GATE_CONFIG_KEY = "regression_gate"


def evaluation_config(message: evaluation_pb2.Evaluation) -> dict[str, Any]:
    """The stored config of an evaluation: its config plus its regression gate outcome."""
    config = from_struct(message.config, "evaluation.config")
    if message.HasField("regression_gate"):
        config[GATE_CONFIG_KEY] = json_format.MessageToDict(
            message.regression_gate, preserving_proto_field_name=True
        )
    return config


def evaluation_to_proto(evaluation: ev.Evaluation) -> evaluation_pb2.Evaluation:
    config = dict(evaluation.config)
    gate = config.pop(GATE_CONFIG_KEY, None)
    message = _evaluation_message(evaluation, config)
    if isinstance(gate, dict):
        json_format.ParseDict(gate, message.regression_gate, ignore_unknown_fields=True)
    return message


def _evaluation_message(
    evaluation: ev.Evaluation, config: dict[str, Any]
) -> evaluation_pb2.Evaluation:
    return evaluation_pb2.Evaluation(
        name=names.evaluation_name(evaluation.uid),
        model_version=names.model_version_name(evaluation.model_id, evaluation.version),
        dataset=evaluation.dataset_id
        if ev.parse_eval_set_source(evaluation.dataset_id)
        else names.dataset_name(evaluation.dataset_id),
        split=cast(dataset_pb2.DatasetSplit, evaluation.split),
        metrics=evaluation.metrics,
        config=struct(config),
        item_count=evaluation.item_count,
        create_time=timestamp(evaluation.create_time),
    )


def item_from_proto(
    message: evaluation_pb2.EvaluationItem, field: str = "items"
) -> tuple[str, dict[str, Any]]:
    try:
        data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    except (ValueError, json_format.Error) as exc:  # NaN or infinity in a Struct
        raise InvalidArgument.field(field, f"must hold only JSON values: {exc}") from None
    data.pop("item_id", None)
    return message.item_id, canonical.normalize(data)


def item_to_proto(item_id: str, data: dict[str, Any]) -> evaluation_pb2.EvaluationItem:
    message = evaluation_pb2.EvaluationItem(item_id=item_id)
    json_format.ParseDict(data, message)
    return message


def leaderboard_entry(rank: int, row: ev.LeaderboardRow) -> evaluation_pb2.LeaderboardEntry:
    return evaluation_pb2.LeaderboardEntry(
        rank=rank,
        model_version=names.model_version_name(row.model_id, row.version),
        evaluation=names.evaluation_name(row.evaluation_uid),
        value=row.value,
        create_time=timestamp(row.create_time),
    )


def eval_set_to_proto(eval_set: es.EvalSet) -> eval_set_pb2.EvalSet:
    return eval_set_pb2.EvalSet(
        name=names.eval_set_name(eval_set.eval_set_id),
        description=eval_set.description,
        item_count=eval_set.item_count,
        counts=eval_set.counts,
        content_hash=eval_set.content_hash,
        create_time=timestamp(eval_set.create_time),
    )


def eval_set_item_from_proto(message: eval_set_pb2.EvalSetItem, field: str) -> es.EvalSetItem:
    return es.EvalSetItem(
        item_id=message.item_id,
        prompt=message.prompt,
        expected_answer=message.expected_answer,
        meta=canonical.normalize(from_struct(message.meta, f"{field}.meta")),
    )


def eval_set_item_to_proto(item: es.EvalSetItem) -> eval_set_pb2.EvalSetItem:
    return eval_set_pb2.EvalSetItem(
        item_id=item.item_id,
        prompt=item.prompt,
        expected_answer=item.expected_answer,
        meta=struct(item.meta),
    )
