import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from tunix_rt.v1 import run_pb2 as _run_pb2
from tunix_rt.v1 import training_job_pb2 as _training_job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SweepObjectiveDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SWEEP_OBJECTIVE_DIRECTION_UNSPECIFIED: _ClassVar[SweepObjectiveDirection]
    SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE: _ClassVar[SweepObjectiveDirection]
    SWEEP_OBJECTIVE_DIRECTION_MINIMIZE: _ClassVar[SweepObjectiveDirection]

class SweepAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SWEEP_ALGORITHM_UNSPECIFIED: _ClassVar[SweepAlgorithm]
    SWEEP_ALGORITHM_TPE: _ClassVar[SweepAlgorithm]
    SWEEP_ALGORITHM_RANDOM: _ClassVar[SweepAlgorithm]
    SWEEP_ALGORITHM_GRID: _ClassVar[SweepAlgorithm]
    SWEEP_ALGORITHM_CMA_ES: _ClassVar[SweepAlgorithm]

class SweepPruner(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SWEEP_PRUNER_UNSPECIFIED: _ClassVar[SweepPruner]
    SWEEP_PRUNER_NONE: _ClassVar[SweepPruner]
    SWEEP_PRUNER_MEDIAN: _ClassVar[SweepPruner]
    SWEEP_PRUNER_SUCCESSIVE_HALVING: _ClassVar[SweepPruner]
    SWEEP_PRUNER_HYPERBAND: _ClassVar[SweepPruner]

class SweepTrialChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SWEEP_TRIAL_CHANGE_KIND_UNSPECIFIED: _ClassVar[SweepTrialChangeKind]
    SWEEP_TRIAL_CHANGE_KIND_CREATED: _ClassVar[SweepTrialChangeKind]
    SWEEP_TRIAL_CHANGE_KIND_REPORTED: _ClassVar[SweepTrialChangeKind]
    SWEEP_TRIAL_CHANGE_KIND_ENDED: _ClassVar[SweepTrialChangeKind]
SWEEP_OBJECTIVE_DIRECTION_UNSPECIFIED: SweepObjectiveDirection
SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE: SweepObjectiveDirection
SWEEP_OBJECTIVE_DIRECTION_MINIMIZE: SweepObjectiveDirection
SWEEP_ALGORITHM_UNSPECIFIED: SweepAlgorithm
SWEEP_ALGORITHM_TPE: SweepAlgorithm
SWEEP_ALGORITHM_RANDOM: SweepAlgorithm
SWEEP_ALGORITHM_GRID: SweepAlgorithm
SWEEP_ALGORITHM_CMA_ES: SweepAlgorithm
SWEEP_PRUNER_UNSPECIFIED: SweepPruner
SWEEP_PRUNER_NONE: SweepPruner
SWEEP_PRUNER_MEDIAN: SweepPruner
SWEEP_PRUNER_SUCCESSIVE_HALVING: SweepPruner
SWEEP_PRUNER_HYPERBAND: SweepPruner
SWEEP_TRIAL_CHANGE_KIND_UNSPECIFIED: SweepTrialChangeKind
SWEEP_TRIAL_CHANGE_KIND_CREATED: SweepTrialChangeKind
SWEEP_TRIAL_CHANGE_KIND_REPORTED: SweepTrialChangeKind
SWEEP_TRIAL_CHANGE_KIND_ENDED: SweepTrialChangeKind

class Sweep(_message.Message):
    __slots__ = ("name", "display_name", "base_training_job", "search_space", "objective", "max_trials", "parallel_trials", "algorithm", "pruner", "seed", "register_best_as", "best_alias", "evaluate_best", "state", "trials", "best_trial", "best_model_version", "best_evaluation", "owner", "error", "last_sequence", "create_time", "end_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_TRIALS_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TRIALS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PRUNER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REGISTER_BEST_AS_FIELD_NUMBER: _ClassVar[int]
    BEST_ALIAS_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_BEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    BEST_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BEST_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    base_training_job: _training_job_pb2.TrainingJob
    search_space: _containers.RepeatedCompositeFieldContainer[SweepParameter]
    objective: SweepObjective
    max_trials: int
    parallel_trials: int
    algorithm: SweepAlgorithm
    pruner: SweepPruner
    seed: int
    register_best_as: str
    best_alias: str
    evaluate_best: bool
    state: _run_pb2.RunState
    trials: _containers.RepeatedCompositeFieldContainer[SweepTrial]
    best_trial: SweepTrial
    best_model_version: str
    best_evaluation: str
    owner: str
    error: _status_pb2.Status
    last_sequence: int
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., base_training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ..., search_space: _Optional[_Iterable[_Union[SweepParameter, _Mapping]]] = ..., objective: _Optional[_Union[SweepObjective, _Mapping]] = ..., max_trials: _Optional[int] = ..., parallel_trials: _Optional[int] = ..., algorithm: _Optional[_Union[SweepAlgorithm, str]] = ..., pruner: _Optional[_Union[SweepPruner, str]] = ..., seed: _Optional[int] = ..., register_best_as: _Optional[str] = ..., best_alias: _Optional[str] = ..., evaluate_best: _Optional[bool] = ..., state: _Optional[_Union[_run_pb2.RunState, str]] = ..., trials: _Optional[_Iterable[_Union[SweepTrial, _Mapping]]] = ..., best_trial: _Optional[_Union[SweepTrial, _Mapping]] = ..., best_model_version: _Optional[str] = ..., best_evaluation: _Optional[str] = ..., owner: _Optional[str] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., last_sequence: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SweepParameter(_message.Message):
    __slots__ = ("name", "float_range", "int_range", "categorical")
    class FloatRange(_message.Message):
        __slots__ = ("min", "max", "log")
        MIN_FIELD_NUMBER: _ClassVar[int]
        MAX_FIELD_NUMBER: _ClassVar[int]
        LOG_FIELD_NUMBER: _ClassVar[int]
        min: float
        max: float
        log: bool
        def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., log: _Optional[bool] = ...) -> None: ...
    class IntRange(_message.Message):
        __slots__ = ("min", "max", "log")
        MIN_FIELD_NUMBER: _ClassVar[int]
        MAX_FIELD_NUMBER: _ClassVar[int]
        LOG_FIELD_NUMBER: _ClassVar[int]
        min: int
        max: int
        log: bool
        def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ..., log: _Optional[bool] = ...) -> None: ...
    class Categorical(_message.Message):
        __slots__ = ("values",)
        VALUES_FIELD_NUMBER: _ClassVar[int]
        values: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Value]
        def __init__(self, values: _Optional[_Iterable[_Union[_struct_pb2.Value, _Mapping]]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOAT_RANGE_FIELD_NUMBER: _ClassVar[int]
    INT_RANGE_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    float_range: SweepParameter.FloatRange
    int_range: SweepParameter.IntRange
    categorical: SweepParameter.Categorical
    def __init__(self, name: _Optional[str] = ..., float_range: _Optional[_Union[SweepParameter.FloatRange, _Mapping]] = ..., int_range: _Optional[_Union[SweepParameter.IntRange, _Mapping]] = ..., categorical: _Optional[_Union[SweepParameter.Categorical, _Mapping]] = ...) -> None: ...

class SweepObjective(_message.Message):
    __slots__ = ("metric", "direction")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    metric: str
    direction: SweepObjectiveDirection
    def __init__(self, metric: _Optional[str] = ..., direction: _Optional[_Union[SweepObjectiveDirection, str]] = ...) -> None: ...

class SweepTrial(_message.Message):
    __slots__ = ("number", "training_job", "params", "state", "objective_value", "intermediate_value_count", "last_step", "reason", "model_version", "create_time", "end_time")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_VALUE_FIELD_NUMBER: _ClassVar[int]
    INTERMEDIATE_VALUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    number: int
    training_job: str
    params: _struct_pb2.Struct
    state: _run_pb2.RunState
    objective_value: float
    intermediate_value_count: int
    last_step: int
    reason: str
    model_version: str
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[int] = ..., training_job: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., state: _Optional[_Union[_run_pb2.RunState, str]] = ..., objective_value: _Optional[float] = ..., intermediate_value_count: _Optional[int] = ..., last_step: _Optional[int] = ..., reason: _Optional[str] = ..., model_version: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SweepEvent(_message.Message):
    __slots__ = ("sequence", "time", "trial_change", "state_change", "log")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TRIAL_CHANGE_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    trial_change: SweepTrialChange
    state_change: _run_pb2.StateChange
    log: _run_pb2.LogLine
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trial_change: _Optional[_Union[SweepTrialChange, _Mapping]] = ..., state_change: _Optional[_Union[_run_pb2.StateChange, _Mapping]] = ..., log: _Optional[_Union[_run_pb2.LogLine, _Mapping]] = ...) -> None: ...

class SweepTrialChange(_message.Message):
    __slots__ = ("kind", "trial", "step", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: SweepTrialChangeKind
    trial: SweepTrial
    step: int
    value: float
    def __init__(self, kind: _Optional[_Union[SweepTrialChangeKind, str]] = ..., trial: _Optional[_Union[SweepTrial, _Mapping]] = ..., step: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
