from tunix_rt.v1 import backend_pb2 as _backend_pb2
from tunix_rt.v1 import evaluation_pb2 as _evaluation_pb2
from tunix_rt.v1 import inference_pb2 as _inference_pb2
from tunix_rt.v1 import regression_gate_pb2 as _regression_gate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadModelRequest(_message.Message):
    __slots__ = ("model", "backend", "precision", "pin")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    model: str
    backend: _backend_pb2.Backend
    precision: _backend_pb2.Precision
    pin: bool
    def __init__(self, model: _Optional[str] = ..., backend: _Optional[_Union[_backend_pb2.Backend, str]] = ..., precision: _Optional[_Union[_backend_pb2.Precision, str]] = ..., pin: _Optional[bool] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("loaded_model",)
    LOADED_MODEL_FIELD_NUMBER: _ClassVar[int]
    loaded_model: _inference_pb2.LoadedModel
    def __init__(self, loaded_model: _Optional[_Union[_inference_pb2.LoadedModel, _Mapping]] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("loaded_model",)
    LOADED_MODEL_FIELD_NUMBER: _ClassVar[int]
    loaded_model: _inference_pb2.LoadedModel
    def __init__(self, loaded_model: _Optional[_Union[_inference_pb2.LoadedModel, _Mapping]] = ...) -> None: ...

class GetLoadedModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetLoadedModelResponse(_message.Message):
    __slots__ = ("loaded_model",)
    LOADED_MODEL_FIELD_NUMBER: _ClassVar[int]
    loaded_model: _inference_pb2.LoadedModel
    def __init__(self, loaded_model: _Optional[_Union[_inference_pb2.LoadedModel, _Mapping]] = ...) -> None: ...

class ListLoadedModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLoadedModelsResponse(_message.Message):
    __slots__ = ("loaded_models", "next_page_token", "memory_budget_bytes", "memory_used_bytes")
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    loaded_models: _containers.RepeatedCompositeFieldContainer[_inference_pb2.LoadedModel]
    next_page_token: str
    memory_budget_bytes: int
    memory_used_bytes: int
    def __init__(self, loaded_models: _Optional[_Iterable[_Union[_inference_pb2.LoadedModel, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., memory_budget_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "prompt", "sampling", "raw_prompt")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    RAW_PROMPT_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    sampling: _inference_pb2.SamplingParams
    raw_prompt: bool
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., sampling: _Optional[_Union[_inference_pb2.SamplingParams, _Mapping]] = ..., raw_prompt: _Optional[bool] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "model_version", "summary")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    text: str
    model_version: str
    summary: _inference_pb2.GenerationSummary
    def __init__(self, text: _Optional[str] = ..., model_version: _Optional[str] = ..., summary: _Optional[_Union[_inference_pb2.GenerationSummary, _Mapping]] = ...) -> None: ...

class GenerateStreamRequest(_message.Message):
    __slots__ = ("model", "prompt", "sampling", "raw_prompt")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    RAW_PROMPT_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    sampling: _inference_pb2.SamplingParams
    raw_prompt: bool
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., sampling: _Optional[_Union[_inference_pb2.SamplingParams, _Mapping]] = ..., raw_prompt: _Optional[bool] = ...) -> None: ...

class GenerateStreamResponse(_message.Message):
    __slots__ = ("text", "token_count", "model_version", "summary")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_count: int
    model_version: str
    summary: _inference_pb2.GenerationSummary
    def __init__(self, text: _Optional[str] = ..., token_count: _Optional[int] = ..., model_version: _Optional[str] = ..., summary: _Optional[_Union[_inference_pb2.GenerationSummary, _Mapping]] = ...) -> None: ...

class BatchPredictRequest(_message.Message):
    __slots__ = ("model", "source", "sampling")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    model: str
    source: _inference_pb2.ItemSource
    sampling: _inference_pb2.SamplingParams
    def __init__(self, model: _Optional[str] = ..., source: _Optional[_Union[_inference_pb2.ItemSource, _Mapping]] = ..., sampling: _Optional[_Union[_inference_pb2.SamplingParams, _Mapping]] = ...) -> None: ...

class BatchPredictResponse(_message.Message):
    __slots__ = ("prediction", "total_count", "model_version")
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    prediction: _inference_pb2.Prediction
    total_count: int
    model_version: str
    def __init__(self, prediction: _Optional[_Union[_inference_pb2.Prediction, _Mapping]] = ..., total_count: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("model", "source", "metrics", "sampling", "regression_gate", "include_items", "dry_run", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_GATE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    source: _inference_pb2.ItemSource
    metrics: _containers.RepeatedScalarFieldContainer[str]
    sampling: _inference_pb2.SamplingParams
    regression_gate: _regression_gate_pb2.RegressionGate
    include_items: bool
    dry_run: bool
    request_id: str
    def __init__(self, model: _Optional[str] = ..., source: _Optional[_Union[_inference_pb2.ItemSource, _Mapping]] = ..., metrics: _Optional[_Iterable[str]] = ..., sampling: _Optional[_Union[_inference_pb2.SamplingParams, _Mapping]] = ..., regression_gate: _Optional[_Union[_regression_gate_pb2.RegressionGate, _Mapping]] = ..., include_items: _Optional[bool] = ..., dry_run: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("progress", "item", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _inference_pb2.EvaluationProgress
    item: _evaluation_pb2.EvaluationItem
    result: _inference_pb2.EvaluationResult
    def __init__(self, progress: _Optional[_Union[_inference_pb2.EvaluationProgress, _Mapping]] = ..., item: _Optional[_Union[_evaluation_pb2.EvaluationItem, _Mapping]] = ..., result: _Optional[_Union[_inference_pb2.EvaluationResult, _Mapping]] = ...) -> None: ...
