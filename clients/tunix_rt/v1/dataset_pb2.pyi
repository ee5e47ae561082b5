import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tunix_rt.v1 import trace_pb2 as _trace_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetSplit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_SPLIT_UNSPECIFIED: _ClassVar[DatasetSplit]
    DATASET_SPLIT_TRAIN: _ClassVar[DatasetSplit]
    DATASET_SPLIT_EVAL: _ClassVar[DatasetSplit]
    DATASET_SPLIT_ALL: _ClassVar[DatasetSplit]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_RAW: _ClassVar[ExportFormat]
    EXPORT_FORMAT_SFT: _ClassVar[ExportFormat]
DATASET_SPLIT_UNSPECIFIED: DatasetSplit
DATASET_SPLIT_TRAIN: DatasetSplit
DATASET_SPLIT_EVAL: DatasetSplit
DATASET_SPLIT_ALL: DatasetSplit
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_RAW: ExportFormat
EXPORT_FORMAT_SFT: ExportFormat

class Dataset(_message.Message):
    __slots__ = ("name", "description", "filter", "split", "stats", "content_hash", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    filter: _trace_pb2.TraceFilter
    split: SplitConfig
    stats: DatasetStats
    content_hash: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., filter: _Optional[_Union[_trace_pb2.TraceFilter, _Mapping]] = ..., split: _Optional[_Union[SplitConfig, _Mapping]] = ..., stats: _Optional[_Union[DatasetStats, _Mapping]] = ..., content_hash: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SplitConfig(_message.Message):
    __slots__ = ("eval_fraction", "seed")
    EVAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    eval_fraction: float
    seed: int
    def __init__(self, eval_fraction: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class DatasetStats(_message.Message):
    __slots__ = ("trace_count", "train_count", "eval_count", "step_count", "prompt_chars", "target_chars", "step_type_counts", "category_counts")
    class StepTypeCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class CategoryCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TRACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    STEP_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    TARGET_CHARS_FIELD_NUMBER: _ClassVar[int]
    STEP_TYPE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_COUNTS_FIELD_NUMBER: _ClassVar[int]
    trace_count: int
    train_count: int
    eval_count: int
    step_count: Distribution
    prompt_chars: Distribution
    target_chars: Distribution
    step_type_counts: _containers.ScalarMap[str, int]
    category_counts: _containers.ScalarMap[str, int]
    def __init__(self, trace_count: _Optional[int] = ..., train_count: _Optional[int] = ..., eval_count: _Optional[int] = ..., step_count: _Optional[_Union[Distribution, _Mapping]] = ..., prompt_chars: _Optional[_Union[Distribution, _Mapping]] = ..., target_chars: _Optional[_Union[Distribution, _Mapping]] = ..., step_type_counts: _Optional[_Mapping[str, int]] = ..., category_counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Distribution(_message.Message):
    __slots__ = ("min", "max", "mean", "p50", "p90", "p99")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P90_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    mean: float
    p50: float
    p90: float
    p99: float
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., mean: _Optional[float] = ..., p50: _Optional[float] = ..., p90: _Optional[float] = ..., p99: _Optional[float] = ...) -> None: ...

class SftExample(_message.Message):
    __slots__ = ("trace", "prompt", "target", "split", "answer")
    TRACE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    trace: str
    prompt: str
    target: str
    split: DatasetSplit
    answer: str
    def __init__(self, trace: _Optional[str] = ..., prompt: _Optional[str] = ..., target: _Optional[str] = ..., split: _Optional[_Union[DatasetSplit, str]] = ..., answer: _Optional[str] = ...) -> None: ...

class DatasetRecord(_message.Message):
    __slots__ = ("index", "split", "trace", "sft_example")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    SFT_EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    index: int
    split: DatasetSplit
    trace: _trace_pb2.Trace
    sft_example: SftExample
    def __init__(self, index: _Optional[int] = ..., split: _Optional[_Union[DatasetSplit, str]] = ..., trace: _Optional[_Union[_trace_pb2.Trace, _Mapping]] = ..., sft_example: _Optional[_Union[SftExample, _Mapping]] = ...) -> None: ...
