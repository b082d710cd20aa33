"""Request shapes of the tenant, config, quota and webhook API (documented in OpenAPI).

Config bodies themselves are free-form JSON objects checked by
:func:`facade.tenancy.config_validation.validate_config` (unknown sections are kept as given).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from facade.models import TENANT_ID_PATTERN
from facade.tenancy.tenant_directory import RESERVED_TENANT_IDS
from facade.tenancy.webhooks import validate_webhook_url
from shared.tenancy import Tier

TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]
CompanyId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]


class TenantCreate(BaseModel):
    """``POST /tenants``: provision a tenant."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: TenantId = Field(description="Stable tenant id, e.g. company_abc.")
    subscription_tier: Tier = Field(description="free, pro or enterprise.")
    company_id: CompanyId | None = Field(
        None, description="The company the tenant belongs to (default: the tenant id)."
    )

    @field_validator("tenant_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in RESERVED_TENANT_IDS:
            raise ValueError(f"{value!r} is reserved (it names a route under /config/)")
        return value


class TenantUpdate(BaseModel):
    """``PATCH /tenants/{tenant_id}``: change the tier (or company id)."""

    model_config = ConfigDict(extra="forbid")

    subscription_tier: Tier | None = Field(None, description="The new tier.")
    company_id: CompanyId | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> TenantUpdate:
        if self.subscription_tier is None and self.company_id is None:
            raise ValueError("give subscription_tier or company_id")
        return self


class ResourceAmount(BaseModel):
    """Body of a quota check, allocation or release."""

    model_config = ConfigDict(extra="forbid", strict=True)

    amount: int = Field(1, ge=1, le=1_000_000_000, description="How many units (MB for storage).")


class WebhookCreate(BaseModel):
    """``POST /config/webhooks``: where to POST config changes."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="Absolute http(s) URL the hub POSTs to.")
    tenant_id: TenantId | None = Field(
        None, description="Watch this tenant's effective config; null: the global config."
    )
    secret: str | None = Field(
        None,
        min_length=16,
        max_length=256,
        description="HMAC-SHA256 signing secret; generated (and returned once) if omitted.",
    )
    description: str = Field("", max_length=256)

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        try:
            return validate_webhook_url(value)
        except Exception as exc:
            raise ValueError("must be an absolute http:// or https:// URL") from exc
