import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tunix_rt.v1 import backend_pb2 as _backend_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_KIND_UNSPECIFIED: _ClassVar[DeviceKind]
    DEVICE_KIND_CPU: _ClassVar[DeviceKind]
    DEVICE_KIND_GPU: _ClassVar[DeviceKind]
    DEVICE_KIND_TPU: _ClassVar[DeviceKind]

class DeviceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATE_UNSPECIFIED: _ClassVar[DeviceState]
    DEVICE_STATE_AVAILABLE: _ClassVar[DeviceState]
    DEVICE_STATE_ALLOCATED: _ClassVar[DeviceState]
    DEVICE_STATE_UNAVAILABLE: _ClassVar[DeviceState]
DEVICE_KIND_UNSPECIFIED: DeviceKind
DEVICE_KIND_CPU: DeviceKind
DEVICE_KIND_GPU: DeviceKind
DEVICE_KIND_TPU: DeviceKind
DEVICE_STATE_UNSPECIFIED: DeviceState
DEVICE_STATE_AVAILABLE: DeviceState
DEVICE_STATE_ALLOCATED: DeviceState
DEVICE_STATE_UNAVAILABLE: DeviceState

class Device(_message.Message):
    __slots__ = ("id", "kind", "platform", "description", "memory_bytes", "host", "state", "training_job", "allocate_time", "backends", "supports_bfloat16", "peak_flops_fp32", "peak_flops_bf16", "peak_flops_source")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_FIELD_NUMBER: _ClassVar[int]
    ALLOCATE_TIME_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_BFLOAT16_FIELD_NUMBER: _ClassVar[int]
    PEAK_FLOPS_FP32_FIELD_NUMBER: _ClassVar[int]
    PEAK_FLOPS_BF16_FIELD_NUMBER: _ClassVar[int]
    PEAK_FLOPS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: DeviceKind
    platform: str
    description: str
    memory_bytes: int
    host: str
    state: DeviceState
    training_job: str
    allocate_time: _timestamp_pb2.Timestamp
    backends: _containers.RepeatedScalarFieldContainer[_backend_pb2.Backend]
    supports_bfloat16: bool
    peak_flops_fp32: float
    peak_flops_bf16: float
    peak_flops_source: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[DeviceKind, str]] = ..., platform: _Optional[str] = ..., description: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., host: _Optional[str] = ..., state: _Optional[_Union[DeviceState, str]] = ..., training_job: _Optional[str] = ..., allocate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backends: _Optional[_Iterable[_Union[_backend_pb2.Backend, str]]] = ..., supports_bfloat16: _Optional[bool] = ..., peak_flops_fp32: _Optional[float] = ..., peak_flops_bf16: _Optional[float] = ..., peak_flops_source: _Optional[str] = ...) -> None: ...

class DeviceRequest(_message.Message):
    __slots__ = ("kind", "count", "device_ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: DeviceKind
    count: int
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[DeviceKind, str]] = ..., count: _Optional[int] = ..., device_ids: _Optional[_Iterable[str]] = ...) -> None: ...
