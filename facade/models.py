"""Request and response shapes of the hub's HTTP API (documented in OpenAPI)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.tenancy import Tier

SERVICE_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$"
TENANT_ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

ServiceName = Annotated[
    str,
    StringConstraints(pattern=SERVICE_NAME_PATTERN),
    Field(description="DNS-label-like: lowercase letters, digits and '-', 1-63 characters."),
]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]
Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:=/-]{0,63}$")]
MetaKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
MetaValue = Annotated[str, StringConstraints(max_length=512)]
Protocol = Literal["http", "https", "grpc", "grpcs", "tcp", "ws", "wss"]
ResourceTier = Literal["basic", "premium", "enterprise"]


class HealthCheck(BaseModel):
    """How the hub checks an instance (Consul's check fields, in seconds and ms).

    Omitted: HTTP GET on ``health_endpoint`` for http/https services, TTL (heartbeats)
    when the registration has a ``ttl``, else TCP connect, all with the defaults below.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["http", "tcp", "ttl"] | None = Field(
        None,
        description="http: GET health_endpoint, 2xx passes; tcp: connect; ttl: the "
        "instance's heartbeats (needs a ttl). Default from protocol and ttl.",
    )
    interval: float = Field(10.0, ge=0.1, le=3600, description="Seconds between probes.")
    timeout: float = Field(2.0, gt=0, le=300, description="Seconds before a probe fails.")
    failures_before_critical: int = Field(
        3, ge=1, le=100, description="Consecutive failures that make a passing instance critical."
    )
    successes_before_passing: int = Field(
        2, ge=1, le=100, description="Consecutive successes that make a critical instance pass."
    )
    degraded_latency_ms: float = Field(
        500.0, gt=0, le=600_000, description="A passing probe slower than this is 'slow'."
    )
    deregister_after: float | None = Field(
        None,
        ge=1,
        le=30 * 86_400,
        description="Deregister the instance after this many seconds critical (null: never).",
    )

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheck:
        if self.timeout > self.interval:
            raise ValueError("timeout must not exceed interval")
        return self


class BackupDeclaration(BaseModel):
    """A service that can back itself up: the hub calls it in system-wide backups."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(
        "/backup",
        max_length=256,
        pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$",
        description="Path the hub POSTs to (on the instance's host and port).",
    )
    depends_on: list[ServiceName] = Field(
        default_factory=list,
        max_length=16,
        description="Services whose backup must finish first.",
    )
    timeout_seconds: float = Field(
        300, gt=0, le=3600, description="How long the hub waits for this service's backup."
    )


class ServiceRegistration(BaseModel):
    """The spec's ``EnhancedServiceRegistration`` plus weight, version, tags, meta, TTL."""

    model_config = ConfigDict(extra="forbid")

    name: ServiceName
    host: str = Field(
        max_length=253, description="Hostname or IP address callers connect to directly."
    )
    port: int = Field(ge=1, le=65535, description="TCP port callers connect to, 1-65535.")
    protocol: Protocol = Field("http", description="How callers talk to the instance.")
    health_endpoint: str = Field(
        "/health",
        max_length=256,
        pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$",
        description="Path probed for HTTP health checks.",
    )
    tenant_capable: bool = Field(True, description="Accepts tenant context headers.")
    subscription_requirements: list[Tier] | None = Field(
        None,
        max_length=3,
        description="Tiers that may use the service; the lowest listed is the minimum. "
        "Empty or null: public.",
    )
    resource_tier: ResourceTier = Field("basic", description="Resource class of the service.")
    weight: int = Field(1, ge=1, le=1000, description="Relative share of traffic.")
    version: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
        description="Version of the running build, e.g. 2.5.0.",
    )
    tags: list[Tag] = Field(
        default_factory=list, max_length=32, description="Free labels (at most 32)."
    )
    meta: dict[MetaKey, MetaValue] = Field(
        default_factory=dict, max_length=64, description="String key/value metadata (at most 64)."
    )
    ttl: int | None = Field(
        None,
        ge=1,
        le=86_400,
        description="Seconds without a heartbeat after which the instance disappears.",
    )
    instance_id: InstanceId | None = Field(
        None, description="Stable id; default derived from name, host and port."
    )
    check: HealthCheck | None = Field(
        None, description="Health check; default chosen from protocol and ttl."
    )
    backup: BackupDeclaration | None = Field(
        None, description="Takes part in system-wide backups (POST /coordination/backups)."
    )

    @field_validator("host")
    @classmethod
    def _host_is_name_or_ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.match(value):
                raise ValueError("host must be a hostname or an IP address") from None
        return value

    @field_validator("subscription_requirements")
    @classmethod
    def _dedupe_tiers(cls, value: list[Tier] | None) -> list[Tier] | None:
        return list(dict.fromkeys(value)) if value else None


class Heartbeat(BaseModel):
    """Optional body of a heartbeat: what the instance reports about itself."""

    model_config = ConfigDict(extra="forbid")

    load: float | None = Field(
        None, ge=0, le=1, description="Current load, 0 (idle) to 1 (saturated)."
    )


class RegistrationResult(BaseModel):
    """Answer to a registration."""

    instance_id: str
    service_name: str
    revision: int = Field(description="Backend revision of the write.")
    ttl: int | None
    created: bool = Field(description="False when the same instance re-registered.")


class InstanceOut(BaseModel):
    """One registered instance as callers see it."""

    instance_id: str
    service_name: str
    host: str
    port: int
    protocol: str
    url: str = Field(description="Where to call the instance directly.")
    health_endpoint: str
    weight: int
    version: str | None
    tags: list[str]
    meta: dict[str, str]
    status: Literal["healthy", "degraded", "critical"]
    load: float | None
    ttl: int | None
    registered_at: str
    check: dict[str, object] = Field(description="The instance's health check, defaults resolved.")
    draining: bool = Field(False, description="A deployment is replacing it: never offered.")
    desired_version: str | None = Field(None, description="The version replacing it.")


class ServiceOut(BaseModel):
    """One service and its instances."""

    name: str
    tenant_capable: bool
    subscription_requirements: list[str] | None
    minimum_tier: str | None = Field(description="Lowest tier that may use it; null: public.")
    resource_tier: str
    instances: list[InstanceOut]
    healthy_instances: int


class ServiceDetailOut(ServiceOut):
    """``GET /services/{name}``."""

    stale: bool


class ServiceListOut(BaseModel):
    """``GET /services/`` and ``POST /services/discover``."""

    services: dict[str, ServiceOut]
    count: int
    filtered: bool = Field(description="Whether tier filtering was applied.")
    tenant_id: str | None
    subscription_tier: str | None
    stale: bool
    revision: int


class EndpointOut(BaseModel):
    """One candidate endpoint in a discovery answer."""

    instance_id: str
    url: str
    host: str
    port: int
    weight: int
    status: str
    confidence: float = Field(description="Health score 0-1; formula in docs/selection.md.")
    latency: float | None = Field(description="EWMA probe latency, ms.")
    load: float | None = Field(description="Load last reported by the instance, 0-1.")


class CircuitOut(BaseModel):
    """The caller's tier's circuit in discovery answers."""

    state: Literal["CLOSED", "OPEN", "HALF_OPEN"]
    retry_at: str | None = Field(description="When an OPEN circuit allows trial calls.")
    retry_after: float | None = Field(description="Seconds until retry_at.")


class DiscoveryOut(BaseModel):
    """``GET /services/discover/{name}``: where to call the service directly."""

    service_name: str
    recommended_endpoint: str | None
    all_healthy_endpoints: list[str]
    confidence: dict[str, float] = Field(description="Health score per endpoint URL, 0-1.")
    connection_type: Literal["direct_call"]
    endpoints: list[EndpointOut]
    degraded_fallback: bool = Field(
        description="True when no instance is healthy and degraded ones are offered."
    )
    versions: list[str] = Field(
        default_factory=list,
        description="Versions of the offered endpoints (a canary offers a tenant one group).",
    )
    circuit: CircuitOut = Field(
        description="The service's circuit for the caller's tier; OPEN: no endpoints offered."
    )
    subscription_tier: str = Field(description="Tier whose circuit applied.")
    stale: bool
    resource_check: dict[str, Any] | None = Field(
        default=None,
        description="With x-resource-requirements: fits, exceeded (resources that would "
        "not fit), per-resource requested/used/limit, and reserved (?reserve=true).",
    )


class EndpointChoiceOut(BaseModel):
    """``GET /services/{name}/endpoint``: the seed's ``get_load_balanced_endpoint``."""

    host: str
    port: int
    load: float | None
    instance_id: str
    url: str
    status: Literal["healthy", "degraded"]
    confidence: float
    strategy: str
    degraded_fallback: bool
    circuit: CircuitOut
    stale: bool


class ServiceHealthOut(BaseModel):
    """One service in ``GET /health/services`` (the seed's exact shape)."""

    status: Literal["healthy", "degraded", "critical"]
    latency: int | None = Field(description="ms")
    last_check: str | None = Field(description="ISO 8601 UTC")


class InstanceHealthOut(BaseModel):
    """One instance's latest health result."""

    instance_id: str
    url: str
    status: Literal["healthy", "degraded", "critical"]
    latency: int | None
    last_check: str | None
    success_rate: float | None
    latency_trend: float | None
    consecutive_failures: int
    consecutive_successes: int
    critical_since: str | None
    output: str
    check: dict[str, object]
    confidence: float | None = Field(description="null when critical (never offered).")


class ServiceHealthDetailOut(ServiceHealthOut):
    """``GET /health/services/{name}``."""

    service_name: str
    instances: list[InstanceHealthOut]
    checked_by: str = Field(description="hub (active probes) or backend (native checks).")
    stale: bool


class CircuitReport(BaseModel):
    """``POST /circuits/{service}/report``: the outcome of one call a caller made."""

    model_config = ConfigDict(extra="forbid")

    success: bool
    latency_ms: float | None = Field(None, ge=0, le=3_600_000)
    tier: Tier | None = Field(
        None, description="The tier whose circuit it counts for; all if null."
    )


class TierCircuitOut(BaseModel):
    """One tier's circuit of a service."""

    state: Literal["CLOSED", "OPEN", "HALF_OPEN"]
    failure_rate_threshold: float
    open_seconds: float
    window: dict[str, object]
    opened_at: str | None
    retry_at: str | None
    trip: dict[str, object] | None


class CircuitsOut(BaseModel):
    """``GET /circuits/{service}``: the circuit of every tier, and the caller's."""

    service_name: str
    state: Literal["CLOSED", "OPEN", "HALF_OPEN"] = Field(description="The caller's tier's state.")
    subscription_tier: str
    tiers: dict[str, TierCircuitOut]
    stale: bool


class HubHealthOut(BaseModel):
    """``GET /health``: the hub's own health."""

    status: Literal["healthy", "degraded", "unhealthy"]
    backend: dict[str, object]
    view: dict[str, object]
    prober: dict[str, object] = Field(description="Active health checking on this replica.")
