from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscriptionTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIPTION_TIER_UNSPECIFIED: _ClassVar[SubscriptionTier]
    SUBSCRIPTION_TIER_FREE: _ClassVar[SubscriptionTier]
    SUBSCRIPTION_TIER_PRO: _ClassVar[SubscriptionTier]
    SUBSCRIPTION_TIER_ENTERPRISE: _ClassVar[SubscriptionTier]
SUBSCRIPTION_TIER_UNSPECIFIED: SubscriptionTier
SUBSCRIPTION_TIER_FREE: SubscriptionTier
SUBSCRIPTION_TIER_PRO: SubscriptionTier
SUBSCRIPTION_TIER_ENTERPRISE: SubscriptionTier

class UserContext(_message.Message):
    __slots__ = ("user_id", "tenant_id", "company_id", "subscription_tier", "correlation_id", "roles", "session_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    COMPANY_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_TIER_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tenant_id: str
    company_id: str
    subscription_tier: SubscriptionTier
    correlation_id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    session_id: str
    def __init__(self, user_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., company_id: _Optional[str] = ..., subscription_tier: _Optional[_Union[SubscriptionTier, str]] = ..., correlation_id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., session_id: _Optional[str] = ...) -> None: ...
