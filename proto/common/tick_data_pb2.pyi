from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TickData(_message.Message):
    __slots__ = ("symbol", "bid", "ask", "last", "volume", "timestamp", "source", "spread", "received_at")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    bid: float
    ask: float
    last: float
    volume: float
    timestamp: int
    source: str
    spread: float
    received_at: int
    def __init__(self, symbol: _Optional[str] = ..., bid: _Optional[float] = ..., ask: _Optional[float] = ..., last: _Optional[float] = ..., volume: _Optional[float] = ..., timestamp: _Optional[int] = ..., source: _Optional[str] = ..., spread: _Optional[float] = ..., received_at: _Optional[int] = ...) -> None: ...

class BatchTickData(_message.Message):
    __slots__ = ("ticks", "batch_id", "batch_timestamp", "source", "user_id", "tenant_id")
    TICKS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[TickData]
    batch_id: str
    batch_timestamp: int
    source: str
    user_id: str
    tenant_id: str
    def __init__(self, ticks: _Optional[_Iterable[_Union[TickData, _Mapping]]] = ..., batch_id: _Optional[str] = ..., batch_timestamp: _Optional[int] = ..., source: _Optional[str] = ..., user_id: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...
