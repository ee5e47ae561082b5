"""The registry's use cases: validation and rules over the repository and the blob store.

Plain Python: it imports neither grpc nor SQLAlchemy. Every method is synchronous and is run by the
servicer on a worker thread.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from tunix_rt.common.errors import FailedPrecondition, InvalidArgument, NotFound
from tunix_rt.registry import canonical, names, pagination, runs
from tunix_rt.registry import datasets as ds
from tunix_rt.registry import eval_sets as es
from tunix_rt.registry import evaluations as ev
from tunix_rt.registry import models as md
from tunix_rt.registry import traces as tr
from tunix_rt.registry.blob_store import BlobStore, check_digest
from tunix_rt.registry.storage.base import new_uid, now
from tunix_rt.registry.storage.repository import Repository

# Artifact names carry a sha256; check_digest gives the precise message, so parse accepts anything.
_SHA_ANY = re.compile(r"^.+$")

MAX_BATCH_TRACES = 10_000
# Run display names and owners, and model versions' source runs, are VARCHAR(256) columns.
MAX_LABEL_CHARS = 256
T = TypeVar("T")


@dataclass
class ImportReport:
    """What an import did."""

    line_count: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, message)
    trace_uids: list[str] = field(default_factory=list)
    rejected: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the token of the next (empty on the last page)."""

    items: list[T]
    next_page_token: str


class Registry:
    """The registry's operations."""

    def __init__(self, repository: Repository, blobs: BlobStore) -> None:
        self.repo = repository
        self.blobs = blobs

    # Traces.

    def create_traces(self, contents: Sequence[tr.TraceContent], request_id: str) -> list[str]:
        """Stores traces all or nothing; returns their uids."""
        if len(contents) > MAX_BATCH_TRACES:
            raise InvalidArgument.field("traces", f"at most {MAX_BATCH_TRACES} per batch")
        fingerprint = canonical.sha256_hex(
            canonical.dumps([[c.content_hash(), c.source] for c in contents])
        )
        joined = self.repo.idempotent(
            "CreateTraces",
            request_id,
            fingerprint,
            lambda session: ",".join(self.repo.insert_traces(session, contents)),
        )
        return joined.split(",") if joined else []

    def import_lines(
        self, lines: Iterable[tuple[int, bytes]], *, atomic: bool, source: str, request_id: str
    ) -> ImportReport:
        """Validates numbered JSONL lines and stores the good ones (none when atomic and any is
        bad). Blank lines are skipped and not counted."""
        report = ImportReport()
        good: list[tr.TraceContent] = []
        for number, line in lines:
            if not line.strip():
                continue
            report.line_count += 1
            try:
                good.append(tr.validate(tr.parse_jsonl_line(line), source=source))
            except InvalidArgument as exc:
                for violation in exc.violations or []:
                    report.errors.append((number, violation.field, violation.description))
        if atomic and report.errors:
            report.rejected = True
            return report
        if good:
            report.trace_uids = self.create_traces(good, request_id)
        return report

    def get_trace(self, name: str) -> tr.Trace:
        return self.repo.get_trace(names.parse(name, "traces", "name", names.UID_PATTERN))

    def list_traces(self, flt: ds.TraceFilter, size: int, token: str) -> Page[tr.Trace]:
        _check_filter(flt)
        limit = pagination.page_size(size)
        key = flt.to_json()
        after = pagination.decode(token, key) or 0
        items, last = self.repo.list_traces(flt, int(after), limit)
        return Page(items, pagination.encode(last, key) if last is not None else "")

    def delete_trace(self, name: str) -> None:
        self.repo.delete_trace(names.parse(name, "traces", "name", names.UID_PATTERN))

    # Datasets.

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
        _check_chars(description, "description", None)
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
            _check_filter(flt)
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
        return Page(items, pagination.encode(last, "datasets") if last is not None else "")

    def delete_dataset(self, name: str) -> None:
        self.repo.delete_dataset(names.parse(name, "datasets", "name"))

    def export_dataset(self, name: str, split: int) -> Iterator[list[tuple[int, tr.Trace]]]:
        dataset_id = names.parse(name, "datasets", "name")
        _check_split_enum(split, "split")
        splits = [ds.TRAIN, ds.EVAL] if split in (0, 3) else [split]
        return self.repo.iter_dataset(dataset_id, splits)

    # Runs.

    def create_run(self, run: runs.Run, run_id: str, request_id: str) -> runs.Run:
        run_id = names.check_id(run_id, "run_id") if run_id else new_uid()
        _check_chars(run.display_name, "run.display_name")
        _check_chars(run.owner, "run.owner")
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
        _check_chars(owner, "owner", None)
        _check_chars(dataset, "dataset", None)
        if dataset:  # runs store the full name; accept a bare id as everywhere else
            dataset = names.dataset_name(names.parse(dataset, "datasets", "dataset"))
        limit = pagination.page_size(size)
        key = [sorted(int(s) for s in states), owner, dataset]
        after = pagination.decode(token, key) or 0
        items, last = self.repo.list_runs(states, owner, dataset, int(after), limit)
        return Page(items, pagination.encode(last, key) if last is not None else "")

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
        _check_chars(owner, "owner")
        if target == runs.RunState.UNSPECIFIED:
            raise InvalidArgument.field("state", "is required")
        error = None
        if target in (runs.RunState.FAILED, runs.RunState.CANCELLED):
            # 9 = FAILED_PRECONDITION-like "the job failed"; 1 = CANCELLED (google.rpc.Code).
            code = 1 if target == runs.RunState.CANCELLED else 13
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
        _check_chars(uri, "checkpoint.uri", None)
        _check_finite(metrics, "checkpoint.metrics")
        return self.repo.upsert_checkpoint(run_id, step, uri, metrics, time or now())

    def list_checkpoints(self, name: str, size: int, token: str) -> Page[runs.Checkpoint]:
        run_id = names.parse(name, "runs", "run")
        limit = pagination.page_size(size)
        after = pagination.decode(token, [run_id])
        items, last = self.repo.list_checkpoints(run_id, -1 if after is None else int(after), limit)
        return Page(items, pagination.encode(last, [run_id]) if last is not None else "")

    # Models.

    def create_model(
        self, model_id: str, description: str, labels: dict[str, str], request_id: str
    ) -> md.Model:
        names.check_id(model_id, "model_id")
        _check_chars(description, "description", None)
        fingerprint = canonical.sha256_hex(canonical.dumps([model_id, description, labels]))
        stored = self.repo.idempotent(
            "CreateModel",
            request_id,
            fingerprint,
            lambda s: self.repo.insert_model(s, model_id, description, labels).model_id,
        )
        return self.repo.get_model(stored)

    def get_model(self, name: str) -> md.Model:
        return self.repo.get_model(names.parse(name, "models", "name"))

    def list_models(self, size: int, token: str) -> Page[md.Model]:
        limit = pagination.page_size(size)
        after = pagination.decode(token, "models") or ""
        items, last = self.repo.list_models(str(after), limit)
        return Page(items, pagination.encode(last, "models") if last is not None else "")

    def create_model_version(
        self, parent: str, version: md.ModelVersion, aliases: Sequence[str], request_id: str
    ) -> md.ModelVersion:
        model_id = names.parse(parent, "models", "parent")
        sha = check_digest(
            names.parse(version.artifact_sha256, "artifacts", "model_version.artifact", _SHA_ANY),
            "model_version.artifact",
        )
        try:
            content_type: str | None = self.repo.get_artifact(sha)[2]
        except NotFound:
            content_type = None  # the insert reports a missing artifact as before
        # A model directory (tar) is checked before anything is stored: config, tokenizer,
        # tensor names and shapes (headers only), so a broken upload registers nothing.
        md.check_model_artifact(self.blobs, sha, content_type)
        for n, alias in enumerate(aliases):
            md.check_alias(alias, f"aliases[{n}]")
        _check_chars(version.source_run, "model_version.source_run")
        _check_chars(version.description, "model_version.description", None)
        _check_finite(version.metrics, "model_version.metrics")
        record = md.ModelVersion(**{**version.__dict__, "artifact_sha256": sha})
        fingerprint = canonical.sha256_hex(
            canonical.dumps(
                [model_id, sha, record.source_run, record.metrics, record.provenance, list(aliases)]
            )
        )

        def insert(session: Any) -> str:
            number = self.repo.insert_version(session, model_id, record, aliases)
            return names.model_version_name(model_id, number)

        stored = self.repo.idempotent("CreateModelVersion", request_id, fingerprint, insert)
        return self.get_model_version(stored)

    def get_model_version(self, name: str) -> md.ModelVersion:
        model_id, version = names.parse_model_version(name, "name")
        return self.repo.get_version(model_id, version)

    def list_model_versions(self, parent: str, size: int, token: str) -> Page[md.ModelVersion]:
        model_id = names.parse(parent, "models", "parent")
        limit = pagination.page_size(size)
        before = pagination.decode(token, [model_id])
        items, last = self.repo.list_versions(
            model_id, None if before is None else int(before), limit
        )
        return Page(items, pagination.encode(last, [model_id]) if last is not None else "")

    def set_alias(self, model: str, alias: str, version: int) -> tuple[md.Model, int]:
        model_id = names.parse(model, "models", "model")
        md.check_alias(alias)
        if not 1 <= version <= names.MAX_VERSION:
            raise InvalidArgument.field("version", f"must be in [1, {names.MAX_VERSION}]")
        return self.repo.set_alias(model_id, alias, version)

    def delete_alias(self, model: str, alias: str) -> md.Model:
        model_id = names.parse(model, "models", "model")
        md.check_alias(alias)
        return self.repo.delete_alias(model_id, alias)

    def resolve(self, reference: str) -> md.ModelVersion:
        if not reference:
            raise InvalidArgument.field("reference", "is required")
        return self.repo.resolve(md.parse_reference(reference))

    # Evaluations.

    def create_evaluation(
        self,
        model_version: str,
        dataset: str,
        split: int,
        metrics: dict[str, float],
        config: dict[str, Any],
        items: Sequence[tuple[str, dict[str, Any]]],
        request_id: str,
    ) -> ev.Evaluation:
        model_id, version = names.parse_model_version(model_version, "evaluation.model_version")
        dataset_id = _evaluated_source(dataset, "evaluation.dataset")
        _check_split_enum(split, "evaluation.split")
        ev.check_metrics(metrics)
        if len(items) > ev.MAX_ITEMS:
            raise InvalidArgument.field("items", f"at most {ev.MAX_ITEMS} items")
        for n, (item_id, _data) in enumerate(items):
            if not item_id or len(item_id) > 256:
                raise InvalidArgument.field(f"items[{n}].item_id", "needs 1-256 chars")
        fingerprint = canonical.sha256_hex(
            canonical.dumps([model_version, dataset, split, metrics, config, list(items)])
        )

        def insert(session: Any) -> str:
            uid = self.repo.insert_evaluation(
                session, model_id, version, dataset_id, split, metrics, config, items
            )
            return names.evaluation_name(uid)

        stored = self.repo.idempotent("CreateEvaluation", request_id, fingerprint, insert)
        return self.get_evaluation(stored)

    def get_evaluation(self, name: str) -> ev.Evaluation:
        return self.repo.get_evaluation(names.parse(name, "evaluations", "name", names.UID_PATTERN))

    def list_evaluations(
        self, model: str, dataset: str, size: int, token: str
    ) -> Page[ev.Evaluation]:
        model_id, version = "", None
        if model.startswith("models/") and "/versions/" in model:
            model_id, version = names.parse_model_version(model, "model")
        elif model:
            model_id = names.parse(model, "models", "model")
        dataset_id = _evaluated_source(dataset, "dataset") if dataset else ""
        limit = pagination.page_size(size)
        key = [model, dataset]
        before = pagination.decode(token, key)
        items, last = self.repo.list_evaluations(
            model_id, version, dataset_id, None if before is None else int(before), limit
        )
        return Page(items, pagination.encode(last, key) if last is not None else "")

    def list_evaluation_items(
        self, name: str, size: int, token: str
    ) -> Page[tuple[str, dict[str, Any]]]:
        uid = names.parse(name, "evaluations", "evaluation", names.UID_PATTERN)
        limit = pagination.page_size(size)
        after = pagination.decode(token, [uid])
        items, last = self.repo.list_items(uid, -1 if after is None else int(after), limit)
        return Page(items, pagination.encode(last, [uid]) if last is not None else "")

    def leaderboard(
        self, dataset: str, metric: str, lower_is_better: bool, split: int, size: int, token: str
    ) -> tuple[Page[ev.LeaderboardRow], int]:
        """A page of ranked rows and the rank of its first row."""
        dataset_id = _evaluated_source(dataset, "dataset")
        if not metric:
            raise InvalidArgument.field("metric", "is required")
        _check_chars(metric, "metric", None)
        _check_split_enum(split, "split")
        limit = pagination.page_size(size)
        key = [dataset_id, metric, lower_is_better, split]
        offset = int(pagination.decode(token, key) or 0)
        ranked = ev.rank(
            self.repo.leaderboard_rows(dataset_id, metric, split), lower_is_better=lower_is_better
        )
        page = ranked[offset : offset + limit]
        more = offset + limit < len(ranked)
        return Page(page, pagination.encode(offset + limit, key) if more else ""), offset + 1

    # Eval sets.

    def create_eval_set(
        self,
        eval_set_id: str,
        description: str,
        items: Sequence[es.EvalSetItem],
        request_id: str,
    ) -> es.EvalSet:
        names.check_id(eval_set_id, "eval_set_id")
        es.validate(description, items)
        eval_set = es.EvalSet(
            eval_set_id=eval_set_id,
            description=description,
            item_count=len(items),
            counts=es.counts(items),
            content_hash=es.content_hash(items),
            create_time=now(),
        )
        fingerprint = canonical.sha256_hex(
            canonical.dumps([eval_set_id, description, eval_set.content_hash])
        )

        def insert(session: Any) -> str:
            self.repo.insert_eval_set(session, eval_set, items)
            return EVAL_SETS + eval_set_id

        self.repo.idempotent("CreateEvalSet", request_id, fingerprint, insert)
        return self.repo.get_eval_set(eval_set_id)

    def get_eval_set(self, name: str) -> es.EvalSet:
        return self.repo.get_eval_set(_eval_set_id(name, "name"))

    def list_eval_sets(self, size: int, token: str) -> Page[es.EvalSet]:
        limit = pagination.page_size(size)
        before = pagination.decode(token, ["evalSets"])
        items, last = self.repo.list_eval_sets(None if before is None else int(before), limit)
        return Page(items, pagination.encode(last, ["evalSets"]) if last is not None else "")

    def list_eval_set_items(self, name: str, size: int, token: str) -> Page[es.EvalSetItem]:
        eval_set_id = _eval_set_id(name, "eval_set")
        limit = pagination.page_size(size)
        after = pagination.decode(token, [eval_set_id])
        items, last = self.repo.list_eval_set_items(
            eval_set_id, -1 if after is None else int(after), limit
        )
        return Page(items, pagination.encode(last, [eval_set_id]) if last is not None else "")

    def delete_eval_set(self, name: str) -> None:
        self.repo.delete_eval_set(_eval_set_id(name, "name"))


EVAL_SETS = "evalSets/"


def _eval_set_id(name: str, field: str) -> str:
    if not name.startswith(EVAL_SETS):
        raise InvalidArgument.field(field, "must be an eval set name 'evalSets/{eval_set}'")
    return names.parse(name, "evalSets", field)


def _evaluated_source(name: str, field: str) -> str:
    """What an evaluation is on: a dataset id, or `evalSets/{id}` (see evaluations.py)."""
    if name.startswith(EVAL_SETS):
        return ev.eval_set_source(_eval_set_id(name, field))
    return names.parse(name, "datasets", field)


def _check_chars(value: str, field: str, limit: int | None = MAX_LABEL_CHARS) -> None:
    """Free text must fit its column and hold no NUL (PostgreSQL text refuses NUL)."""
    if limit is not None and len(value) > limit:
        raise InvalidArgument.field(field, f"is {len(value)} chars; the limit is {limit}")
    if "\x00" in value:
        raise InvalidArgument.field(field, "must not contain NUL characters")


def _check_finite(metrics: dict[str, float], field: str) -> None:
    """NaN and infinities are not JSON, so no database's JSON column stores them alike."""
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise InvalidArgument.field(f"{field}[{key!r}]", "must be a finite number")


def _check_split_enum(split: int, field: str) -> None:
    """A DatasetSplit number (proto3 enums are open, so any int32 can arrive)."""
    if split not in (0, ds.TRAIN, ds.EVAL, 3):
        raise InvalidArgument.field(field, f"{split} is not a DatasetSplit")


def _check_filter(flt: ds.TraceFilter) -> None:
    _check_chars(flt.source, "filter.source", None)
    for n, (key, value) in enumerate(flt.meta):
        _check_chars(key, f"filter.meta[{n}].key", None)
        _check_chars(value, f"filter.meta[{n}].value", None)
