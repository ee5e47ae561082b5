import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from tunix_rt.v1 import backend_pb2 as _backend_pb2
from tunix_rt.v1 import dataset_pb2 as _dataset_pb2
from tunix_rt.v1 import device_pb2 as _device_pb2
from tunix_rt.v1 import inference_pb2 as _inference_pb2
from tunix_rt.v1 import regression_gate_pb2 as _regression_gate_pb2
from tunix_rt.v1 import run_pb2 as _run_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingJobPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_JOB_PHASE_UNSPECIFIED: _ClassVar[TrainingJobPhase]
    TRAINING_JOB_PHASE_PREPARING: _ClassVar[TrainingJobPhase]
    TRAINING_JOB_PHASE_TRAINING: _ClassVar[TrainingJobPhase]
    TRAINING_JOB_PHASE_EVALUATING: _ClassVar[TrainingJobPhase]
    TRAINING_JOB_PHASE_CHECKPOINTING: _ClassVar[TrainingJobPhase]
    TRAINING_JOB_PHASE_REGISTERING: _ClassVar[TrainingJobPhase]
    TRAINING_JOB_PHASE_EVALUATING_MODEL: _ClassVar[TrainingJobPhase]
    TRAINING_JOB_PHASE_STOPPING: _ClassVar[TrainingJobPhase]

class LearningRateSchedule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEARNING_RATE_SCHEDULE_UNSPECIFIED: _ClassVar[LearningRateSchedule]
    LEARNING_RATE_SCHEDULE_CONSTANT: _ClassVar[LearningRateSchedule]
    LEARNING_RATE_SCHEDULE_LINEAR: _ClassVar[LearningRateSchedule]
    LEARNING_RATE_SCHEDULE_COSINE: _ClassVar[LearningRateSchedule]

class BatchingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCHING_STRATEGY_UNSPECIFIED: _ClassVar[BatchingStrategy]
    BATCHING_STRATEGY_PACKED: _ClassVar[BatchingStrategy]
    BATCHING_STRATEGY_LENGTH_BUCKETED: _ClassVar[BatchingStrategy]
    BATCHING_STRATEGY_PADDED: _ClassVar[BatchingStrategy]

class LoraRegistrationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LORA_REGISTRATION_MODE_UNSPECIFIED: _ClassVar[LoraRegistrationMode]
    LORA_REGISTRATION_MODE_MERGED: _ClassVar[LoraRegistrationMode]
    LORA_REGISTRATION_MODE_ADAPTER: _ClassVar[LoraRegistrationMode]
TRAINING_JOB_PHASE_UNSPECIFIED: TrainingJobPhase
TRAINING_JOB_PHASE_PREPARING: TrainingJobPhase
TRAINING_JOB_PHASE_TRAINING: TrainingJobPhase
TRAINING_JOB_PHASE_EVALUATING: TrainingJobPhase
TRAINING_JOB_PHASE_CHECKPOINTING: TrainingJobPhase
TRAINING_JOB_PHASE_REGISTERING: TrainingJobPhase
TRAINING_JOB_PHASE_EVALUATING_MODEL: TrainingJobPhase
TRAINING_JOB_PHASE_STOPPING: TrainingJobPhase
LEARNING_RATE_SCHEDULE_UNSPECIFIED: LearningRateSchedule
LEARNING_RATE_SCHEDULE_CONSTANT: LearningRateSchedule
LEARNING_RATE_SCHEDULE_LINEAR: LearningRateSchedule
LEARNING_RATE_SCHEDULE_COSINE: LearningRateSchedule
BATCHING_STRATEGY_UNSPECIFIED: BatchingStrategy
BATCHING_STRATEGY_PACKED: BatchingStrategy
BATCHING_STRATEGY_LENGTH_BUCKETED: BatchingStrategy
BATCHING_STRATEGY_PADDED: BatchingStrategy
LORA_REGISTRATION_MODE_UNSPECIFIED: LoraRegistrationMode
LORA_REGISTRATION_MODE_MERGED: LoraRegistrationMode
LORA_REGISTRATION_MODE_ADAPTER: LoraRegistrationMode

class TrainingJob(_message.Message):
    __slots__ = ("name", "display_name", "dataset", "preset", "base_model_version", "checkpoint_dir", "architecture_overrides", "backend", "hyperparameters", "lora", "full_fine_tuning", "device_request", "priority", "registration", "completion_evaluation", "labels", "run", "state", "phase", "queue_position", "devices", "resolved_backend", "resolved_precision", "owner", "step", "total_steps", "epoch", "estimated_time_remaining", "latest_metrics", "latest_checkpoint", "last_sequence", "registered_model_version", "evaluation", "error", "evaluation_error", "attempt", "create_time", "start_time", "end_time", "update_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LatestMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricPoint
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricPoint, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_DIR_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    FULL_FINE_TUNING_FIELD_NUMBER: _ClassVar[int]
    DEVICE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BACKEND_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_PRECISION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TIME_REMAINING_FIELD_NUMBER: _ClassVar[int]
    LATEST_METRICS_FIELD_NUMBER: _ClassVar[int]
    LATEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    dataset: str
    preset: str
    base_model_version: str
    checkpoint_dir: str
    architecture_overrides: _struct_pb2.Struct
    backend: _backend_pb2.Backend
    hyperparameters: Hyperparameters
    lora: LoraConfig
    full_fine_tuning: FullFineTuning
    device_request: _device_pb2.DeviceRequest
    priority: int
    registration: ModelRegistration
    completion_evaluation: CompletionEvaluation
    labels: _containers.ScalarMap[str, str]
    run: str
    state: _run_pb2.RunState
    phase: TrainingJobPhase
    queue_position: int
    devices: _run_pb2.DeviceAssignment
    resolved_backend: _backend_pb2.Backend
    resolved_precision: _backend_pb2.Precision
    owner: str
    step: int
    total_steps: int
    epoch: float
    estimated_time_remaining: _duration_pb2.Duration
    latest_metrics: _containers.MessageMap[str, MetricPoint]
    latest_checkpoint: str
    last_sequence: int
    registered_model_version: str
    evaluation: str
    error: _status_pb2.Status
    evaluation_error: _status_pb2.Status
    attempt: int
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., dataset: _Optional[str] = ..., preset: _Optional[str] = ..., base_model_version: _Optional[str] = ..., checkpoint_dir: _Optional[str] = ..., architecture_overrides: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., backend: _Optional[_Union[_backend_pb2.Backend, str]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., lora: _Optional[_Union[LoraConfig, _Mapping]] = ..., full_fine_tuning: _Optional[_Union[FullFineTuning, _Mapping]] = ..., device_request: _Optional[_Union[_device_pb2.DeviceRequest, _Mapping]] = ..., priority: _Optional[int] = ..., registration: _Optional[_Union[ModelRegistration, _Mapping]] = ..., completion_evaluation: _Optional[_Union[CompletionEvaluation, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., run: _Optional[str] = ..., state: _Optional[_Union[_run_pb2.RunState, str]] = ..., phase: _Optional[_Union[TrainingJobPhase, str]] = ..., queue_position: _Optional[int] = ..., devices: _Optional[_Union[_run_pb2.DeviceAssignment, _Mapping]] = ..., resolved_backend: _Optional[_Union[_backend_pb2.Backend, str]] = ..., resolved_precision: _Optional[_Union[_backend_pb2.Precision, str]] = ..., owner: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., epoch: _Optional[float] = ..., estimated_time_remaining: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latest_metrics: _Optional[_Mapping[str, MetricPoint]] = ..., latest_checkpoint: _Optional[str] = ..., last_sequence: _Optional[int] = ..., registered_model_version: _Optional[str] = ..., evaluation: _Optional[str] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., evaluation_error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., attempt: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("step", "value", "time")
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    step: int
    value: float
    time: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[int] = ..., value: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Hyperparameters(_message.Message):
    __slots__ = ("learning_rate", "learning_rate_schedule", "warmup_steps", "min_learning_rate_ratio", "weight_decay", "batch_size", "gradient_accumulation_steps", "max_seq_len", "max_steps", "num_epochs", "seed", "max_grad_norm", "eval_interval_steps", "checkpoint_interval_steps", "eval_max_examples", "eval_max_new_tokens", "chat_template", "precision", "batching")
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    MIN_LEARNING_RATE_RATIO_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    NUM_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    EVAL_INTERVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EVAL_MAX_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    EVAL_MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    learning_rate: float
    learning_rate_schedule: LearningRateSchedule
    warmup_steps: int
    min_learning_rate_ratio: float
    weight_decay: float
    batch_size: int
    gradient_accumulation_steps: int
    max_seq_len: int
    max_steps: int
    num_epochs: float
    seed: int
    max_grad_norm: float
    eval_interval_steps: int
    checkpoint_interval_steps: int
    eval_max_examples: int
    eval_max_new_tokens: int
    chat_template: str
    precision: _backend_pb2.Precision
    batching: BatchingStrategy
    def __init__(self, learning_rate: _Optional[float] = ..., learning_rate_schedule: _Optional[_Union[LearningRateSchedule, str]] = ..., warmup_steps: _Optional[int] = ..., min_learning_rate_ratio: _Optional[float] = ..., weight_decay: _Optional[float] = ..., batch_size: _Optional[int] = ..., gradient_accumulation_steps: _Optional[int] = ..., max_seq_len: _Optional[int] = ..., max_steps: _Optional[int] = ..., num_epochs: _Optional[float] = ..., seed: _Optional[int] = ..., max_grad_norm: _Optional[float] = ..., eval_interval_steps: _Optional[int] = ..., checkpoint_interval_steps: _Optional[int] = ..., eval_max_examples: _Optional[int] = ..., eval_max_new_tokens: _Optional[int] = ..., chat_template: _Optional[str] = ..., precision: _Optional[_Union[_backend_pb2.Precision, str]] = ..., batching: _Optional[_Union[BatchingStrategy, str]] = ...) -> None: ...

class LoraConfig(_message.Message):
    __slots__ = ("rank", "alpha", "dropout", "target_modules")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: float
    dropout: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[float] = ..., dropout: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ...) -> None: ...

class FullFineTuning(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelRegistration(_message.Message):
    __slots__ = ("model", "aliases", "description", "lora_mode")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LORA_MODE_FIELD_NUMBER: _ClassVar[int]
    model: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    description: str
    lora_mode: LoraRegistrationMode
    def __init__(self, model: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., lora_mode: _Optional[_Union[LoraRegistrationMode, str]] = ...) -> None: ...

class CompletionEvaluation(_message.Message):
    __slots__ = ("inference_address", "split", "metrics", "max_items", "sampling", "regression_gate")
    INFERENCE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_GATE_FIELD_NUMBER: _ClassVar[int]
    inference_address: str
    split: _dataset_pb2.DatasetSplit
    metrics: _containers.RepeatedScalarFieldContainer[str]
    max_items: int
    sampling: _inference_pb2.SamplingParams
    regression_gate: _regression_gate_pb2.RegressionGate
    def __init__(self, inference_address: _Optional[str] = ..., split: _Optional[_Union[_dataset_pb2.DatasetSplit, str]] = ..., metrics: _Optional[_Iterable[str]] = ..., max_items: _Optional[int] = ..., sampling: _Optional[_Union[_inference_pb2.SamplingParams, _Mapping]] = ..., regression_gate: _Optional[_Union[_regression_gate_pb2.RegressionGate, _Mapping]] = ...) -> None: ...

class ArchitecturePreset(_message.Message):
    __slots__ = ("name", "family", "description", "parameter_count", "num_layers", "hidden_size", "vocab_size", "context_length", "backends", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    description: str
    parameter_count: int
    num_layers: int
    hidden_size: int
    vocab_size: int
    context_length: int
    backends: _containers.RepeatedScalarFieldContainer[_backend_pb2.Backend]
    config: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., description: _Optional[str] = ..., parameter_count: _Optional[int] = ..., num_layers: _Optional[int] = ..., hidden_size: _Optional[int] = ..., vocab_size: _Optional[int] = ..., context_length: _Optional[int] = ..., backends: _Optional[_Iterable[_Union[_backend_pb2.Backend, str]]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
