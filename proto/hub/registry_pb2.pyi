from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATUS_UNSPECIFIED: _ClassVar[HealthStatus]
    HEALTH_STATUS_HEALTHY: _ClassVar[HealthStatus]
    HEALTH_STATUS_DEGRADED: _ClassVar[HealthStatus]
    HEALTH_STATUS_CRITICAL: _ClassVar[HealthStatus]
HEALTH_STATUS_UNSPECIFIED: HealthStatus
HEALTH_STATUS_HEALTHY: HealthStatus
HEALTH_STATUS_DEGRADED: HealthStatus
HEALTH_STATUS_CRITICAL: HealthStatus

class ServiceRegistration(_message.Message):
    __slots__ = ("name", "host", "port", "protocol", "health_endpoint", "tenant_capable", "subscription_requirements", "resource_tier", "weight", "version", "tags", "meta", "ttl", "instance_id", "check", "backup")
    class MetaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HEALTH_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    TENANT_CAPABLE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TIER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    BACKUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    port: int
    protocol: str
    health_endpoint: str
    tenant_capable: bool
    subscription_requirements: _containers.RepeatedScalarFieldContainer[str]
    resource_tier: str
    weight: int
    version: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    meta: _containers.ScalarMap[str, str]
    ttl: int
    instance_id: str
    check: HealthCheck
    backup: BackupDeclaration
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., protocol: _Optional[str] = ..., health_endpoint: _Optional[str] = ..., tenant_capable: _Optional[bool] = ..., subscription_requirements: _Optional[_Iterable[str]] = ..., resource_tier: _Optional[str] = ..., weight: _Optional[int] = ..., version: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., meta: _Optional[_Mapping[str, str]] = ..., ttl: _Optional[int] = ..., instance_id: _Optional[str] = ..., check: _Optional[_Union[HealthCheck, _Mapping]] = ..., backup: _Optional[_Union[BackupDeclaration, _Mapping]] = ...) -> None: ...

class BackupDeclaration(_message.Message):
    __slots__ = ("endpoint", "depends_on", "timeout_seconds")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: float
    def __init__(self, endpoint: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("kind", "interval", "timeout", "failures_before_critical", "successes_before_passing", "degraded_latency_ms", "deregister_after")
    KIND_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_BEFORE_CRITICAL_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_BEFORE_PASSING_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    DEREGISTER_AFTER_FIELD_NUMBER: _ClassVar[int]
    kind: str
    interval: float
    timeout: float
    failures_before_critical: int
    successes_before_passing: int
    degraded_latency_ms: float
    deregister_after: float
    def __init__(self, kind: _Optional[str] = ..., interval: _Optional[float] = ..., timeout: _Optional[float] = ..., failures_before_critical: _Optional[int] = ..., successes_before_passing: _Optional[int] = ..., degraded_latency_ms: _Optional[float] = ..., deregister_after: _Optional[float] = ...) -> None: ...

class RegistrationResult(_message.Message):
    __slots__ = ("instance_id", "service_name", "revision", "ttl")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    service_name: str
    revision: int
    ttl: int
    def __init__(self, instance_id: _Optional[str] = ..., service_name: _Optional[str] = ..., revision: _Optional[int] = ..., ttl: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("instance_id", "load")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    load: float
    def __init__(self, instance_id: _Optional[str] = ..., load: _Optional[float] = ...) -> None: ...

class HealthCheckResult(_message.Message):
    __slots__ = ("status", "latency", "last_check")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECK_FIELD_NUMBER: _ClassVar[int]
    status: HealthStatus
    latency: float
    last_check: str
    def __init__(self, status: _Optional[_Union[HealthStatus, str]] = ..., latency: _Optional[float] = ..., last_check: _Optional[str] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("host", "port", "load")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    load: float
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., load: _Optional[float] = ...) -> None: ...

class DiscoveryAnswer(_message.Message):
    __slots__ = ("service_name", "recommended_endpoint", "all_healthy_endpoints", "confidence", "connection_type", "stale")
    class ConfidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ALL_HEALTHY_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    recommended_endpoint: str
    all_healthy_endpoints: _containers.RepeatedScalarFieldContainer[str]
    confidence: _containers.ScalarMap[str, float]
    connection_type: str
    stale: bool
    def __init__(self, service_name: _Optional[str] = ..., recommended_endpoint: _Optional[str] = ..., all_healthy_endpoints: _Optional[_Iterable[str]] = ..., confidence: _Optional[_Mapping[str, float]] = ..., connection_type: _Optional[str] = ..., stale: _Optional[bool] = ...) -> None: ...
