from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MetricDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_DIRECTION_UNSPECIFIED: _ClassVar[MetricDirection]
    METRIC_DIRECTION_HIGHER_IS_BETTER: _ClassVar[MetricDirection]
    METRIC_DIRECTION_LOWER_IS_BETTER: _ClassVar[MetricDirection]
METRIC_DIRECTION_UNSPECIFIED: MetricDirection
METRIC_DIRECTION_HIGHER_IS_BETTER: MetricDirection
METRIC_DIRECTION_LOWER_IS_BETTER: MetricDirection

class RegressionGate(_message.Message):
    __slots__ = ("baseline", "baseline_evaluation", "thresholds")
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    baseline: str
    baseline_evaluation: str
    thresholds: _containers.RepeatedCompositeFieldContainer[MetricThreshold]
    def __init__(self, baseline: _Optional[str] = ..., baseline_evaluation: _Optional[str] = ..., thresholds: _Optional[_Iterable[_Union[MetricThreshold, _Mapping]]] = ...) -> None: ...

class MetricThreshold(_message.Message):
    __slots__ = ("metric", "direction", "max_regression", "max_relative_regression")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    MAX_REGRESSION_FIELD_NUMBER: _ClassVar[int]
    MAX_RELATIVE_REGRESSION_FIELD_NUMBER: _ClassVar[int]
    metric: str
    direction: MetricDirection
    max_regression: float
    max_relative_regression: float
    def __init__(self, metric: _Optional[str] = ..., direction: _Optional[_Union[MetricDirection, str]] = ..., max_regression: _Optional[float] = ..., max_relative_regression: _Optional[float] = ...) -> None: ...

class RegressionGateResult(_message.Message):
    __slots__ = ("passed", "baseline_model_version", "baseline_evaluation", "comparisons")
    PASSED_FIELD_NUMBER: _ClassVar[int]
    BASELINE_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASELINE_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    COMPARISONS_FIELD_NUMBER: _ClassVar[int]
    passed: bool
    baseline_model_version: str
    baseline_evaluation: str
    comparisons: _containers.RepeatedCompositeFieldContainer[MetricComparison]
    def __init__(self, passed: _Optional[bool] = ..., baseline_model_version: _Optional[str] = ..., baseline_evaluation: _Optional[str] = ..., comparisons: _Optional[_Iterable[_Union[MetricComparison, _Mapping]]] = ...) -> None: ...

class MetricComparison(_message.Message):
    __slots__ = ("metric", "direction", "baseline_value", "candidate_value", "regression", "relative_regression", "gated", "passed")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    BASELINE_VALUE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_REGRESSION_FIELD_NUMBER: _ClassVar[int]
    GATED_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    metric: str
    direction: MetricDirection
    baseline_value: float
    candidate_value: float
    regression: float
    relative_regression: float
    gated: bool
    passed: bool
    def __init__(self, metric: _Optional[str] = ..., direction: _Optional[_Union[MetricDirection, str]] = ..., baseline_value: _Optional[float] = ..., candidate_value: _Optional[float] = ..., regression: _Optional[float] = ..., relative_regression: _Optional[float] = ..., gated: _Optional[bool] = ..., passed: _Optional[bool] = ...) -> None: ...
