from proto.ml import features_pb2 as _features_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_UP: _ClassVar[Direction]
    DIRECTION_DOWN: _ClassVar[Direction]
    DIRECTION_FLAT: _ClassVar[Direction]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_UP: Direction
DIRECTION_DOWN: Direction
DIRECTION_FLAT: Direction

class PredictionRequest(_message.Message):
    __slots__ = ("request_id", "model_name", "model_version", "features", "tenant_id", "user_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_name: str
    model_version: str
    features: _features_pb2.FeatureVector
    tenant_id: str
    user_id: str
    def __init__(self, request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., features: _Optional[_Union[_features_pb2.FeatureVector, _Mapping]] = ..., tenant_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("prediction_id", "request_id", "model_name", "model_version", "symbol", "timestamp", "horizon_ms", "predicted_value", "direction", "confidence", "class_probabilities", "feature_set_version")
    class ClassProbabilitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    HORIZON_MS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CLASS_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    request_id: str
    model_name: str
    model_version: str
    symbol: str
    timestamp: int
    horizon_ms: int
    predicted_value: float
    direction: Direction
    confidence: float
    class_probabilities: _containers.ScalarMap[str, float]
    feature_set_version: str
    def __init__(self, prediction_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., symbol: _Optional[str] = ..., timestamp: _Optional[int] = ..., horizon_ms: _Optional[int] = ..., predicted_value: _Optional[float] = ..., direction: _Optional[_Union[Direction, str]] = ..., confidence: _Optional[float] = ..., class_probabilities: _Optional[_Mapping[str, float]] = ..., feature_set_version: _Optional[str] = ...) -> None: ...
