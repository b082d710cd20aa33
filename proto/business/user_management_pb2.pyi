from proto.common import user_context_pb2 as _user_context_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union
from proto.common.user_context_pb2 import UserContext as UserContext
from proto.common.user_context_pb2 import SubscriptionTier as SubscriptionTier

DESCRIPTOR: _descriptor.FileDescriptor
SUBSCRIPTION_TIER_UNSPECIFIED: _user_context_pb2.SubscriptionTier
SUBSCRIPTION_TIER_FREE: _user_context_pb2.SubscriptionTier
SUBSCRIPTION_TIER_PRO: _user_context_pb2.SubscriptionTier
SUBSCRIPTION_TIER_ENTERPRISE: _user_context_pb2.SubscriptionTier

class UserStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_STATUS_UNSPECIFIED: _ClassVar[UserStatus]
    USER_STATUS_ACTIVE: _ClassVar[UserStatus]
    USER_STATUS_SUSPENDED: _ClassVar[UserStatus]
    USER_STATUS_DELETED: _ClassVar[UserStatus]
USER_STATUS_UNSPECIFIED: UserStatus
USER_STATUS_ACTIVE: UserStatus
USER_STATUS_SUSPENDED: UserStatus
USER_STATUS_DELETED: UserStatus

class Tenant(_message.Message):
    __slots__ = ("tenant_id", "name", "subscription_tier", "created_at", "active")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_TIER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    name: str
    subscription_tier: _user_context_pb2.SubscriptionTier
    created_at: int
    active: bool
    def __init__(self, tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., subscription_tier: _Optional[_Union[_user_context_pb2.SubscriptionTier, str]] = ..., created_at: _Optional[int] = ..., active: _Optional[bool] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("user_id", "tenant_id", "email", "display_name", "roles", "status", "created_at", "last_login_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_LOGIN_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tenant_id: str
    email: str
    display_name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    status: UserStatus
    created_at: int
    last_login_at: int
    def __init__(self, user_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., email: _Optional[str] = ..., display_name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[UserStatus, str]] = ..., created_at: _Optional[int] = ..., last_login_at: _Optional[int] = ...) -> None: ...

class UserEvent(_message.Message):
    __slots__ = ("event_type", "user", "actor", "occurred_at")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[UserEvent.EventType]
        EVENT_TYPE_CREATED: _ClassVar[UserEvent.EventType]
        EVENT_TYPE_UPDATED: _ClassVar[UserEvent.EventType]
        EVENT_TYPE_SUSPENDED: _ClassVar[UserEvent.EventType]
        EVENT_TYPE_DELETED: _ClassVar[UserEvent.EventType]
        EVENT_TYPE_LOGGED_IN: _ClassVar[UserEvent.EventType]
    EVENT_TYPE_UNSPECIFIED: UserEvent.EventType
    EVENT_TYPE_CREATED: UserEvent.EventType
    EVENT_TYPE_UPDATED: UserEvent.EventType
    EVENT_TYPE_SUSPENDED: UserEvent.EventType
    EVENT_TYPE_DELETED: UserEvent.EventType
    EVENT_TYPE_LOGGED_IN: UserEvent.EventType
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    event_type: UserEvent.EventType
    user: User
    actor: _user_context_pb2.UserContext
    occurred_at: int
    def __init__(self, event_type: _Optional[_Union[UserEvent.EventType, str]] = ..., user: _Optional[_Union[User, _Mapping]] = ..., actor: _Optional[_Union[_user_context_pb2.UserContext, _Mapping]] = ..., occurred_at: _Optional[int] = ...) -> None: ...
