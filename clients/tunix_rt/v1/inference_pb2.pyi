import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from tunix_rt.v1 import backend_pb2 as _backend_pb2
from tunix_rt.v1 import dataset_pb2 as _dataset_pb2
from tunix_rt.v1 import evaluation_pb2 as _evaluation_pb2
from tunix_rt.v1 import regression_gate_pb2 as _regression_gate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadedModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOADED_MODEL_STATE_UNSPECIFIED: _ClassVar[LoadedModelState]
    LOADED_MODEL_STATE_LOADING: _ClassVar[LoadedModelState]
    LOADED_MODEL_STATE_READY: _ClassVar[LoadedModelState]
    LOADED_MODEL_STATE_FAILED: _ClassVar[LoadedModelState]
    LOADED_MODEL_STATE_UNLOADING: _ClassVar[LoadedModelState]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_END_OF_SEQUENCE: _ClassVar[FinishReason]
    FINISH_REASON_CONTEXT_LENGTH: _ClassVar[FinishReason]

class EvaluationPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVALUATION_PHASE_UNSPECIFIED: _ClassVar[EvaluationPhase]
    EVALUATION_PHASE_LOADING: _ClassVar[EvaluationPhase]
    EVALUATION_PHASE_EVALUATING_BASELINE: _ClassVar[EvaluationPhase]
    EVALUATION_PHASE_EVALUATING: _ClassVar[EvaluationPhase]
    EVALUATION_PHASE_RECORDING: _ClassVar[EvaluationPhase]
LOADED_MODEL_STATE_UNSPECIFIED: LoadedModelState
LOADED_MODEL_STATE_LOADING: LoadedModelState
LOADED_MODEL_STATE_READY: LoadedModelState
LOADED_MODEL_STATE_FAILED: LoadedModelState
LOADED_MODEL_STATE_UNLOADING: LoadedModelState
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_END_OF_SEQUENCE: FinishReason
FINISH_REASON_CONTEXT_LENGTH: FinishReason
EVALUATION_PHASE_UNSPECIFIED: EvaluationPhase
EVALUATION_PHASE_LOADING: EvaluationPhase
EVALUATION_PHASE_EVALUATING_BASELINE: EvaluationPhase
EVALUATION_PHASE_EVALUATING: EvaluationPhase
EVALUATION_PHASE_RECORDING: EvaluationPhase

class LoadedModel(_message.Message):
    __slots__ = ("model_version", "checkpoint_dir", "artifact", "references", "state", "error", "backend", "precision", "architecture", "parameter_count", "context_length", "vocab_size", "memory_bytes", "devices", "pinned", "load_time", "load_duration", "last_use_time", "request_count", "chat_template")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_DIR_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    LOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    LOAD_DURATION_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    checkpoint_dir: str
    artifact: str
    references: _containers.RepeatedScalarFieldContainer[str]
    state: LoadedModelState
    error: _status_pb2.Status
    backend: _backend_pb2.Backend
    precision: _backend_pb2.Precision
    architecture: str
    parameter_count: int
    context_length: int
    vocab_size: int
    memory_bytes: int
    devices: _containers.RepeatedScalarFieldContainer[str]
    pinned: bool
    load_time: _timestamp_pb2.Timestamp
    load_duration: _duration_pb2.Duration
    last_use_time: _timestamp_pb2.Timestamp
    request_count: int
    chat_template: str
    def __init__(self, model_version: _Optional[str] = ..., checkpoint_dir: _Optional[str] = ..., artifact: _Optional[str] = ..., references: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[LoadedModelState, str]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., backend: _Optional[_Union[_backend_pb2.Backend, str]] = ..., precision: _Optional[_Union[_backend_pb2.Precision, str]] = ..., architecture: _Optional[str] = ..., parameter_count: _Optional[int] = ..., context_length: _Optional[int] = ..., vocab_size: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., devices: _Optional[_Iterable[str]] = ..., pinned: _Optional[bool] = ..., load_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., load_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_count: _Optional[int] = ..., chat_template: _Optional[str] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_k", "top_p", "max_new_tokens", "stop_sequences", "seed", "max_reasoning_tokens")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_k: int
    top_p: float
    max_new_tokens: int
    stop_sequences: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    max_reasoning_tokens: int
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., max_new_tokens: _Optional[int] = ..., stop_sequences: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., max_reasoning_tokens: _Optional[int] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class GenerationSummary(_message.Message):
    __slots__ = ("finish_reason", "usage", "answer", "seed", "time_to_first_token", "total_time")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TIME_FIELD_NUMBER: _ClassVar[int]
    finish_reason: FinishReason
    usage: TokenUsage
    answer: str
    seed: int
    time_to_first_token: _duration_pb2.Duration
    total_time: _duration_pb2.Duration
    def __init__(self, finish_reason: _Optional[_Union[FinishReason, str]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., answer: _Optional[str] = ..., seed: _Optional[int] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ItemSource(_message.Message):
    __slots__ = ("dataset", "eval_set", "max_items")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EVAL_SET_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetSplitSource
    eval_set: str
    max_items: int
    def __init__(self, dataset: _Optional[_Union[DatasetSplitSource, _Mapping]] = ..., eval_set: _Optional[str] = ..., max_items: _Optional[int] = ...) -> None: ...

class DatasetSplitSource(_message.Message):
    __slots__ = ("dataset", "split")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    split: _dataset_pb2.DatasetSplit
    def __init__(self, dataset: _Optional[str] = ..., split: _Optional[_Union[_dataset_pb2.DatasetSplit, str]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("index", "item", "summary", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    item: _evaluation_pb2.EvaluationItem
    summary: GenerationSummary
    error: _status_pb2.Status
    def __init__(self, index: _Optional[int] = ..., item: _Optional[_Union[_evaluation_pb2.EvaluationItem, _Mapping]] = ..., summary: _Optional[_Union[GenerationSummary, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class EvaluationProgress(_message.Message):
    __slots__ = ("completed_count", "total_count", "metrics", "elapsed", "estimated_time_remaining", "phase")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COMPLETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TIME_REMAINING_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    completed_count: int
    total_count: int
    metrics: _containers.ScalarMap[str, float]
    elapsed: _duration_pb2.Duration
    estimated_time_remaining: _duration_pb2.Duration
    phase: EvaluationPhase
    def __init__(self, completed_count: _Optional[int] = ..., total_count: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., estimated_time_remaining: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., phase: _Optional[_Union[EvaluationPhase, str]] = ...) -> None: ...

class EvaluationResult(_message.Message):
    __slots__ = ("evaluation", "regression_gate", "error_count")
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_GATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    evaluation: _evaluation_pb2.Evaluation
    regression_gate: _regression_gate_pb2.RegressionGateResult
    error_count: int
    def __init__(self, evaluation: _Optional[_Union[_evaluation_pb2.Evaluation, _Mapping]] = ..., regression_gate: _Optional[_Union[_regression_gate_pb2.RegressionGateResult, _Mapping]] = ..., error_count: _Optional[int] = ...) -> None: ...
