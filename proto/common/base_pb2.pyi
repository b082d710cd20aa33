from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class MessageEnvelope(_message.Message):
    __slots__ = ("message_type", "user_id", "payload", "timestamp", "service_source", "correlation_id")
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SERVICE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    message_type: str
    user_id: str
    payload: bytes
    timestamp: int
    service_source: str
    correlation_id: str
    def __init__(self, message_type: _Optional[str] = ..., user_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., service_source: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...
