"""SQLAlchemy 2.0 table definitions of the registry database.

JSON columns use the portable `JSON` type (TEXT on SQLite, json on PostgreSQL). Values that are
filtered or sorted on (trace meta entries, evaluation metrics) are also stored in narrow side
tables, because JSON path comparisons differ between the two dialects. Times are stored as UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so Alembic migrations can drop and alter them on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonDict = dict[str, Any]


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {JsonDict: JSON, datetime: DateTime(timezone=True)}


class TraceRow(Base):
    """One stored trace; immutable after insert."""

    __tablename__ = "traces"
    # An import looks up which of its traces the source already holds (migration 0004). Not
    # unique: CreateTrace and BatchCreateTraces may store the same content twice.
    __table_args__ = (Index("ix_traces_source_content_hash", "source", "content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(256), index=True, default="")
    trace_version: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    final_answer: Mapped[str] = mapped_column(Text)
    steps: Mapped[list[Any]] = mapped_column(JSON)
    meta: Mapped[JsonDict]
    content_hash: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(index=True)


class TraceMetaRow(Base):
    """A top-level scalar `meta` entry of a trace, as text, for portable key/value filters."""

    __tablename__ = "trace_meta"
    __table_args__ = (Index("ix_trace_meta_key_value", "key", "value"),)

    trace_id: Mapped[int] = mapped_column(
        ForeignKey("traces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))


class DatasetRow(Base):
    """A dataset: a frozen, ordered membership with a seeded split."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    filter: Mapped[JsonDict | None]
    eval_fraction: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(BigInteger)
    stats: Mapped[JsonDict]
    content_hash: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime]


class DatasetMemberRow(Base):
    """A trace's position and split in a dataset. Traces cannot be deleted while referenced."""

    __tablename__ = "dataset_members"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    trace_id: Mapped[int] = mapped_column(ForeignKey("traces.id"), index=True)
    # 1 = train, 2 = eval (the DatasetSplit enum numbers).
    split: Mapped[int] = mapped_column(SmallInteger)


class RunRow(Base):
    """The durable record of a training job."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    dataset: Mapped[str] = mapped_column(String(256), index=True, default="")
    config: Mapped[JsonDict]
    # The RunState enum number.
    state: Mapped[int] = mapped_column(SmallInteger, index=True)
    devices: Mapped[JsonDict | None]
    owner: Mapped[str] = mapped_column(String(256), index=True, default="")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # {"code": int, "message": str} when failed or cancelled.
    error: Mapped[JsonDict | None]
    labels: Mapped[JsonDict]
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[datetime]
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    update_time: Mapped[datetime]


class RunEventRow(Base):
    """One event of a run's history; (run, sequence) is unique, so appends are idempotent."""

    __tablename__ = "run_events"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    time: Mapped[datetime]
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    # metrics | state_change | log | checkpoint_saved
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[JsonDict]


class CheckpointRow(Base):
    """A checkpoint of a run at a step."""

    __tablename__ = "checkpoints"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[JsonDict]
    create_time: Mapped[datetime]


class ArtifactRow(Base):
    """Metadata of a content-addressed blob; the bytes live in the blob store."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(128), default="")
    create_time: Mapped[datetime]


class ModelRow(Base):
    """A registered model name."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[JsonDict]
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]


class ModelVersionRow(Base):
    """An immutable version of a model."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"), index=True)
    source_run: Mapped[str] = mapped_column(String(256), default="")
    metrics: Mapped[JsonDict]
    provenance: Mapped[JsonDict]
    description: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[datetime]


class ModelAliasRow(Base):
    """An alias of a model pointing at one of its versions; the primary key makes moves atomic."""

    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )


class EvaluationRow(Base):
    """An evaluation of a model version on a dataset split."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    # Exactly one of dataset_id and eval_set_id is set: what the model was evaluated on.
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), index=True)
    eval_set_id: Mapped[int | None] = mapped_column(ForeignKey("eval_sets.id"), index=True)
    split: Mapped[int] = mapped_column(SmallInteger, default=0)
    metrics: Mapped[JsonDict]
    config: Mapped[JsonDict]
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[datetime]


class EvalSetRow(Base):
    """An eval set: a frozen, ordered list of prompts with expected answers."""

    __tablename__ = "eval_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    eval_set_id: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[JsonDict]
    content_hash: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime]


class EvalSetItemRow(Base):
    """One item of an eval set at its position."""

    __tablename__ = "eval_set_items"

    eval_set_id: Mapped[int] = mapped_column(
        ForeignKey("eval_sets.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(256))
    prompt: Mapped[str] = mapped_column(Text)
    expected_answer: Mapped[str] = mapped_column(Text)
    meta: Mapped[JsonDict]


class EvaluationMetricRow(Base):
    """One aggregate metric of an evaluation, as a float column that leaderboards sort on."""

    __tablename__ = "evaluation_metrics"
    __table_args__ = (Index("ix_evaluation_metrics_key_value", "key", "value"),)

    evaluation_id: Mapped[int] = mapped_column(
        ForeignKey("evaluations.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class EvaluationItemRow(Base):
    """One per-item result of an evaluation."""

    __tablename__ = "evaluation_items"

    evaluation_id: Mapped[int] = mapped_column(
        ForeignKey("evaluations.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(256))
    data: Mapped[JsonDict]


class IdempotencyKeyRow(Base):
    """A create's `request_id`, the fingerprint of its request and the resource it made."""

    __tablename__ = "idempotency_keys"

    method: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    # Text: a batch create records the comma-joined uids of every trace it made (33 chars each,
    # up to MAX_BATCH_TRACES of them); migration 0003 says why this is not a side table.
    resource: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime]
