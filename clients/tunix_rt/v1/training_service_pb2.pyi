from tunix_rt.v1 import device_pb2 as _device_pb2
from tunix_rt.v1 import run_pb2 as _run_pb2
from tunix_rt.v1 import sweep_pb2 as _sweep_pb2
from tunix_rt.v1 import training_job_pb2 as _training_job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTrainingJobRequest(_message.Message):
    __slots__ = ("training_job", "training_job_id", "request_id", "validate_only")
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    training_job: _training_job_pb2.TrainingJob
    training_job_id: str
    request_id: str
    validate_only: bool
    def __init__(self, training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ..., training_job_id: _Optional[str] = ..., request_id: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreateTrainingJobResponse(_message.Message):
    __slots__ = ("training_job",)
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    training_job: _training_job_pb2.TrainingJob
    def __init__(self, training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("training_job",)
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    training_job: _training_job_pb2.TrainingJob
    def __init__(self, training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("states", "dataset", "model", "owner", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[_run_pb2.RunState]
    dataset: str
    model: str
    owner: str
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[_run_pb2.RunState, str]]] = ..., dataset: _Optional[str] = ..., model: _Optional[str] = ..., owner: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("training_jobs", "next_page_token")
    TRAINING_JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    training_jobs: _containers.RepeatedCompositeFieldContainer[_training_job_pb2.TrainingJob]
    next_page_token: str
    def __init__(self, training_jobs: _Optional[_Iterable[_Union[_training_job_pb2.TrainingJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTrainingJobRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelTrainingJobResponse(_message.Message):
    __slots__ = ("training_job",)
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    training_job: _training_job_pb2.TrainingJob
    def __init__(self, training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class ResumeTrainingJobRequest(_message.Message):
    __slots__ = ("name", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResumeTrainingJobResponse(_message.Message):
    __slots__ = ("training_job",)
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    training_job: _training_job_pb2.TrainingJob
    def __init__(self, training_job: _Optional[_Union[_training_job_pb2.TrainingJob, _Mapping]] = ...) -> None: ...

class StreamJobMetricsRequest(_message.Message):
    __slots__ = ("name", "from_sequence", "history_only")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ONLY_FIELD_NUMBER: _ClassVar[int]
    name: str
    from_sequence: int
    history_only: bool
    def __init__(self, name: _Optional[str] = ..., from_sequence: _Optional[int] = ..., history_only: _Optional[bool] = ...) -> None: ...

class StreamJobMetricsResponse(_message.Message):
    __slots__ = ("run_event", "fell_behind")
    RUN_EVENT_FIELD_NUMBER: _ClassVar[int]
    FELL_BEHIND_FIELD_NUMBER: _ClassVar[int]
    run_event: _run_pb2.RunEvent
    fell_behind: FellBehind
    def __init__(self, run_event: _Optional[_Union[_run_pb2.RunEvent, _Mapping]] = ..., fell_behind: _Optional[_Union[FellBehind, _Mapping]] = ...) -> None: ...

class FellBehind(_message.Message):
    __slots__ = ("last_delivered_sequence", "latest_sequence")
    LAST_DELIVERED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LATEST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    last_delivered_sequence: int
    latest_sequence: int
    def __init__(self, last_delivered_sequence: _Optional[int] = ..., latest_sequence: _Optional[int] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("kind", "page_size", "page_token")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    kind: _device_pb2.DeviceKind
    page_size: int
    page_token: str
    def __init__(self, kind: _Optional[_Union[_device_pb2.DeviceKind, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices", "next_page_token", "host")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[_device_pb2.Device]
    next_page_token: str
    host: str
    def __init__(self, devices: _Optional[_Iterable[_Union[_device_pb2.Device, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., host: _Optional[str] = ...) -> None: ...

class ListArchitecturePresetsRequest(_message.Message):
    __slots__ = ("family", "page_size", "page_token")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    family: str
    page_size: int
    page_token: str
    def __init__(self, family: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListArchitecturePresetsResponse(_message.Message):
    __slots__ = ("presets", "next_page_token")
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    presets: _containers.RepeatedCompositeFieldContainer[_training_job_pb2.ArchitecturePreset]
    next_page_token: str
    def __init__(self, presets: _Optional[_Iterable[_Union[_training_job_pb2.ArchitecturePreset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateSweepRequest(_message.Message):
    __slots__ = ("sweep", "sweep_id", "request_id", "validate_only")
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    sweep: _sweep_pb2.Sweep
    sweep_id: str
    request_id: str
    validate_only: bool
    def __init__(self, sweep: _Optional[_Union[_sweep_pb2.Sweep, _Mapping]] = ..., sweep_id: _Optional[str] = ..., request_id: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreateSweepResponse(_message.Message):
    __slots__ = ("sweep",)
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    sweep: _sweep_pb2.Sweep
    def __init__(self, sweep: _Optional[_Union[_sweep_pb2.Sweep, _Mapping]] = ...) -> None: ...

class GetSweepRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSweepResponse(_message.Message):
    __slots__ = ("sweep",)
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    sweep: _sweep_pb2.Sweep
    def __init__(self, sweep: _Optional[_Union[_sweep_pb2.Sweep, _Mapping]] = ...) -> None: ...

class ListSweepsRequest(_message.Message):
    __slots__ = ("states", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[_run_pb2.RunState]
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[_run_pb2.RunState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSweepsResponse(_message.Message):
    __slots__ = ("sweeps", "next_page_token")
    SWEEPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sweeps: _containers.RepeatedCompositeFieldContainer[_sweep_pb2.Sweep]
    next_page_token: str
    def __init__(self, sweeps: _Optional[_Iterable[_Union[_sweep_pb2.Sweep, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelSweepRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelSweepResponse(_message.Message):
    __slots__ = ("sweep",)
    SWEEP_FIELD_NUMBER: _ClassVar[int]
    sweep: _sweep_pb2.Sweep
    def __init__(self, sweep: _Optional[_Union[_sweep_pb2.Sweep, _Mapping]] = ...) -> None: ...

class StreamSweepRequest(_message.Message):
    __slots__ = ("name", "from_sequence", "history_only")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ONLY_FIELD_NUMBER: _ClassVar[int]
    name: str
    from_sequence: int
    history_only: bool
    def __init__(self, name: _Optional[str] = ..., from_sequence: _Optional[int] = ..., history_only: _Optional[bool] = ...) -> None: ...

class StreamSweepResponse(_message.Message):
    __slots__ = ("sweep_event",)
    SWEEP_EVENT_FIELD_NUMBER: _ClassVar[int]
    sweep_event: _sweep_pb2.SweepEvent
    def __init__(self, sweep_event: _Optional[_Union[_sweep_pb2.SweepEvent, _Mapping]] = ...) -> None: ...
