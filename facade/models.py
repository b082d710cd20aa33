"""Request and response shapes of the hub's HTTP API (documented in OpenAPI)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

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
    confidence: float


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
    stale: bool


class HubHealthOut(BaseModel):
    """``GET /health``: the hub's own health."""

    status: Literal["healthy", "degraded", "unhealthy"]
    backend: dict[str, object]
    view: dict[str, object]
