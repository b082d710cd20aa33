from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignalAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_ACTION_UNSPECIFIED: _ClassVar[SignalAction]
    SIGNAL_ACTION_BUY: _ClassVar[SignalAction]
    SIGNAL_ACTION_SELL: _ClassVar[SignalAction]
    SIGNAL_ACTION_HOLD: _ClassVar[SignalAction]
    SIGNAL_ACTION_CLOSE: _ClassVar[SignalAction]
SIGNAL_ACTION_UNSPECIFIED: SignalAction
SIGNAL_ACTION_BUY: SignalAction
SIGNAL_ACTION_SELL: SignalAction
SIGNAL_ACTION_HOLD: SignalAction
SIGNAL_ACTION_CLOSE: SignalAction

class TradingSignal(_message.Message):
    __slots__ = ("signal_id", "symbol", "action", "confidence", "entry_price", "stop_loss", "take_profit", "timeframe", "strategy_id", "model_version", "generated_at", "expires_at", "user_id", "tenant_id", "indicators", "reason")
    class IndicatorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    signal_id: str
    symbol: str
    action: SignalAction
    confidence: float
    entry_price: float
    stop_loss: float
    take_profit: float
    timeframe: str
    strategy_id: str
    model_version: str
    generated_at: int
    expires_at: int
    user_id: str
    tenant_id: str
    indicators: _containers.ScalarMap[str, float]
    reason: str
    def __init__(self, signal_id: _Optional[str] = ..., symbol: _Optional[str] = ..., action: _Optional[_Union[SignalAction, str]] = ..., confidence: _Optional[float] = ..., entry_price: _Optional[float] = ..., stop_loss: _Optional[float] = ..., take_profit: _Optional[float] = ..., timeframe: _Optional[str] = ..., strategy_id: _Optional[str] = ..., model_version: _Optional[str] = ..., generated_at: _Optional[int] = ..., expires_at: _Optional[int] = ..., user_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., indicators: _Optional[_Mapping[str, float]] = ..., reason: _Optional[str] = ...) -> None: ...

class SignalBatch(_message.Message):
    __slots__ = ("signals", "batch_timestamp")
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    BATCH_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    signals: _containers.RepeatedCompositeFieldContainer[TradingSignal]
    batch_timestamp: int
    def __init__(self, signals: _Optional[_Iterable[_Union[TradingSignal, _Mapping]]] = ..., batch_timestamp: _Optional[int] = ...) -> None: ...
