"""Request dependencies: the hub runtime, the authorized caller and its tenant context."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from facade.models import TENANT_ID_PATTERN
from facade.runtime import Hub
from facade.security import Permission, Principal, Role
from shared.errors import InvalidRequest, TenantHeadersNotAllowed, TenantMismatch
from shared.tenancy import TIERS, TenantContext, is_tier

_TENANT_ID = re.compile(TENANT_ID_PATTERN)

TENANT_QUERY_DOC = (
    "Tenant id when headers cannot be set (spec example 2); the x-tenant-id header wins."
)


async def get_hub(request: Request) -> Hub:
    """The running hub of this app."""
    hub: Hub = request.app.state.hub
    return hub


def requires(permission: Permission) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A dependency that authenticates the caller and demands ``permission``."""

    async def authorized(request: Request) -> Principal:
        hub: Hub = request.app.state.hub
        return hub.access.authorize(request, permission)

    authorized.__name__ = f"requires_{permission.value.replace('-', '_')}"
    return authorized


Reader = Annotated[Principal, Depends(requires(Permission.READ))]
Registrar = Annotated[Principal, Depends(requires(Permission.REGISTER))]
Reporter = Annotated[Principal, Depends(requires(Permission.REPORT))]
Configurator = Annotated[Principal, Depends(requires(Permission.CONFIGURE))]
Administrator = Annotated[Principal, Depends(requires(Permission.ADMINISTER))]


def parse_tenant_context(
    request: Request, principal: Principal, tenant_id: str | None
) -> TenantContext:
    """The tenant context a request acts for, as far as its caller may assert one.

    Gateway and admin tokens assert it with the ``x-*`` headers (or ``tenant_id`` as a
    query fallback). A tenant token always acts for its own tenant at its provisioned
    tier. Anyone else sending tenant headers is refused rather than silently trusted.
    """
    ctx = TenantContext.from_headers(request.headers)
    if ctx.tenant_id is None and tenant_id:
        ctx = TenantContext(
            tenant_id=tenant_id.strip() or None,
            user_id=ctx.user_id,
            tier=ctx.tier,
            correlation_id=ctx.correlation_id,
        )
    if principal.role is Role.TENANT:
        if ctx.tier is not None or (ctx.tenant_id not in (None, principal.tenant_id)):
            raise TenantMismatch(
                "a tenant token acts for its own tenant at its provisioned tier; "
                "drop the tenant headers",
                details={"tenant_id": principal.tenant_id},
            )
        ctx = TenantContext(
            tenant_id=principal.tenant_id, user_id=ctx.user_id, correlation_id=ctx.correlation_id
        )
    elif ctx.is_tenant_scoped and not principal.allows(Permission.ASSERT_TENANT):
        raise TenantHeadersNotAllowed(
            f"a {principal.role.value} token may not assert tenant context headers",
            details={"role": principal.role.value},
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
    if ctx.tenant_id is not None:
        request.state.audit_tenant = ctx.tenant_id
    return ctx


async def tenant_context(
    request: Request,
    principal: Reader,
    tenant_id: Annotated[str | None, Query(description=TENANT_QUERY_DOC)] = None,
) -> TenantContext:
    """The caller's validated tenant context (see :func:`parse_tenant_context`)."""
    return parse_tenant_context(request, principal, tenant_id)


HubDep = Annotated[Hub, Depends(get_hub)]
TenantDep = Annotated[TenantContext, Depends(tenant_context)]
