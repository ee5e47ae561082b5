import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tunix_rt.v1 import dataset_pb2 as _dataset_pb2
from tunix_rt.v1 import regression_gate_pb2 as _regression_gate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Evaluation(_message.Message):
    __slots__ = ("name", "model_version", "dataset", "split", "metrics", "config", "item_count", "create_time", "regression_gate")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_GATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_version: str
    dataset: str
    split: _dataset_pb2.DatasetSplit
    metrics: _containers.ScalarMap[str, float]
    config: _struct_pb2.Struct
    item_count: int
    create_time: _timestamp_pb2.Timestamp
    regression_gate: _regression_gate_pb2.RegressionGateResult
    def __init__(self, name: _Optional[str] = ..., model_version: _Optional[str] = ..., dataset: _Optional[str] = ..., split: _Optional[_Union[_dataset_pb2.DatasetSplit, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., item_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., regression_gate: _Optional[_Union[_regression_gate_pb2.RegressionGateResult, _Mapping]] = ...) -> None: ...

class EvaluationItem(_message.Message):
    __slots__ = ("item_id", "prompt", "expected", "prediction", "extracted_answer", "correct", "scores", "meta")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    EXTRACTED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    prompt: str
    expected: str
    prediction: str
    extracted_answer: str
    correct: bool
    scores: _containers.ScalarMap[str, float]
    meta: _struct_pb2.Struct
    def __init__(self, item_id: _Optional[str] = ..., prompt: _Optional[str] = ..., expected: _Optional[str] = ..., prediction: _Optional[str] = ..., extracted_answer: _Optional[str] = ..., correct: _Optional[bool] = ..., scores: _Optional[_Mapping[str, float]] = ..., meta: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class LeaderboardEntry(_message.Message):
    __slots__ = ("rank", "model_version", "evaluation", "value", "create_time")
    RANK_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    rank: int
    model_version: str
    evaluation: str
    value: float
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, rank: _Optional[int] = ..., model_version: _Optional[str] = ..., evaluation: _Optional[str] = ..., value: _Optional[float] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
