from proto.common import user_context_pb2 as _user_context_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscriptionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIPTION_STATUS_UNSPECIFIED: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_TRIAL: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_ACTIVE: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_PAST_DUE: _ClassVar[SubscriptionStatus]
    SUBSCRIPTION_STATUS_CANCELLED: _ClassVar[SubscriptionStatus]
SUBSCRIPTION_STATUS_UNSPECIFIED: SubscriptionStatus
SUBSCRIPTION_STATUS_TRIAL: SubscriptionStatus
SUBSCRIPTION_STATUS_ACTIVE: SubscriptionStatus
SUBSCRIPTION_STATUS_PAST_DUE: SubscriptionStatus
SUBSCRIPTION_STATUS_CANCELLED: SubscriptionStatus

class RateLimits(_message.Message):
    __slots__ = ("api_calls_per_hour", "websocket_connections")
    API_CALLS_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    WEBSOCKET_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    api_calls_per_hour: int
    websocket_connections: int
    def __init__(self, api_calls_per_hour: _Optional[int] = ..., websocket_connections: _Optional[int] = ...) -> None: ...

class ResourceLimits(_message.Message):
    __slots__ = ("max_concurrent_requests", "max_data_storage_mb")
    MAX_CONCURRENT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    MAX_DATA_STORAGE_MB_FIELD_NUMBER: _ClassVar[int]
    max_concurrent_requests: int
    max_data_storage_mb: int
    def __init__(self, max_concurrent_requests: _Optional[int] = ..., max_data_storage_mb: _Optional[int] = ...) -> None: ...

class FeatureFlags(_message.Message):
    __slots__ = ("basic_analytics", "advanced_ai", "custom_models")
    BASIC_ANALYTICS_FIELD_NUMBER: _ClassVar[int]
    ADVANCED_AI_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_MODELS_FIELD_NUMBER: _ClassVar[int]
    basic_analytics: bool
    advanced_ai: bool
    custom_models: bool
    def __init__(self, basic_analytics: _Optional[bool] = ..., advanced_ai: _Optional[bool] = ..., custom_models: _Optional[bool] = ...) -> None: ...

class TierDefinition(_message.Message):
    __slots__ = ("tier", "rate_limits", "resource_limits", "features")
    TIER_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    tier: _user_context_pb2.SubscriptionTier
    rate_limits: RateLimits
    resource_limits: ResourceLimits
    features: FeatureFlags
    def __init__(self, tier: _Optional[_Union[_user_context_pb2.SubscriptionTier, str]] = ..., rate_limits: _Optional[_Union[RateLimits, _Mapping]] = ..., resource_limits: _Optional[_Union[ResourceLimits, _Mapping]] = ..., features: _Optional[_Union[FeatureFlags, _Mapping]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("subscription_id", "tenant_id", "tier", "status", "started_at", "renews_at", "cancelled_at")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    RENEWS_AT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    tenant_id: str
    tier: _user_context_pb2.SubscriptionTier
    status: SubscriptionStatus
    started_at: int
    renews_at: int
    cancelled_at: int
    def __init__(self, subscription_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., tier: _Optional[_Union[_user_context_pb2.SubscriptionTier, str]] = ..., status: _Optional[_Union[SubscriptionStatus, str]] = ..., started_at: _Optional[int] = ..., renews_at: _Optional[int] = ..., cancelled_at: _Optional[int] = ...) -> None: ...

class SubscriptionChanged(_message.Message):
    __slots__ = ("tenant_id", "previous_tier", "new_tier", "reason", "changed_at")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TIER_FIELD_NUMBER: _ClassVar[int]
    NEW_TIER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    previous_tier: _user_context_pb2.SubscriptionTier
    new_tier: _user_context_pb2.SubscriptionTier
    reason: str
    changed_at: int
    def __init__(self, tenant_id: _Optional[str] = ..., previous_tier: _Optional[_Union[_user_context_pb2.SubscriptionTier, str]] = ..., new_tier: _Optional[_Union[_user_context_pb2.SubscriptionTier, str]] = ..., reason: _Optional[str] = ..., changed_at: _Optional[int] = ...) -> None: ...
