from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_JAX: _ClassVar[Backend]
    BACKEND_TORCH: _ClassVar[Backend]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_UNSPECIFIED: _ClassVar[Precision]
    PRECISION_FLOAT32: _ClassVar[Precision]
    PRECISION_MIXED_BFLOAT16: _ClassVar[Precision]
    PRECISION_BFLOAT16: _ClassVar[Precision]
BACKEND_UNSPECIFIED: Backend
BACKEND_JAX: Backend
BACKEND_TORCH: Backend
PRECISION_UNSPECIFIED: Precision
PRECISION_FLOAT32: Precision
PRECISION_MIXED_BFLOAT16: Precision
PRECISION_BFLOAT16: Precision
