"""Request dependencies: the hub runtime and the caller's tenant context."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Query, Request

from facade.models import TENANT_ID_PATTERN
from facade.runtime import Hub
from shared.errors import InvalidRequest
from shared.tenancy import TIERS, TenantContext, is_tier

_TENANT_ID = re.compile(TENANT_ID_PATTERN)


async def get_hub(request: Request) -> Hub:
    """The running hub of this app."""
    hub: Hub = request.app.state.hub
    return hub


TENANT_QUERY_DOC = (
    "Tenant id when headers cannot be set (spec example 2); the x-tenant-id header wins."
)


async def tenant_context(
    request: Request,
    tenant_id: Annotated[str | None, Query(description=TENANT_QUERY_DOC)] = None,
) -> TenantContext:
    """The caller's tenant context from the ``x-*`` headers, validated."""
    return parse_tenant_context(request, tenant_id)


def parse_tenant_context(request: Request, tenant_id: str | None) -> TenantContext:
    """Read and validate the tenant headers (``tenant_id``: the query fallback)."""
    ctx = TenantContext.from_headers(request.headers)
    if ctx.tenant_id is None and tenant_id:
        ctx = TenantContext(
            tenant_id=tenant_id.strip() or None,
            user_id=ctx.user_id,
            tier=ctx.tier,
            correlation_id=ctx.correlation_id,
        )
    if ctx.tier is not None and not is_tier(ctx.tier):
        raise InvalidRequest(
            f"unknown subscription tier {ctx.tier!r}",
            details={"header": "x-subscription-tier", "allowed": list(TIERS)},
        )
    if ctx.tenant_id is not None and not _TENANT_ID.match(ctx.tenant_id):
        raise InvalidRequest(
            "invalid tenant id",
            details={"header": "x-tenant-id", "pattern": TENANT_ID_PATTERN},
        )
    return ctx


HubDep = Annotated[Hub, Depends(get_hub)]
TenantDep = Annotated[TenantContext, Depends(tenant_context)]
