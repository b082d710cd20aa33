from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureVector(_message.Message):
    __slots__ = ("symbol", "timeframe", "timestamp", "features", "feature_set", "feature_set_version", "source")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SET_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: str
    timestamp: int
    features: _containers.ScalarMap[str, float]
    feature_set: str
    feature_set_version: str
    source: str
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[str] = ..., timestamp: _Optional[int] = ..., features: _Optional[_Mapping[str, float]] = ..., feature_set: _Optional[str] = ..., feature_set_version: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class FeatureBatch(_message.Message):
    __slots__ = ("vectors", "batch_id", "batch_timestamp")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[FeatureVector]
    batch_id: str
    batch_timestamp: int
    def __init__(self, vectors: _Optional[_Iterable[_Union[FeatureVector, _Mapping]]] = ..., batch_id: _Optional[str] = ..., batch_timestamp: _Optional[int] = ...) -> None: ...
