"""Request dependencies: the hub runtime, the authorized caller and its tenant context."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from facade.access.tokens import Permission, Principal, Role
from facade.models import TENANT_ID_PATTERN
from facade.runtime import Hub
from shared.errors import InvalidRequest, TenantHeadersNotAllowed, TenantMismatch
from shared.tenancy import TenantContext, caller_tier, capped_tier

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


def resolve_tenant_context(
    principal: Principal,
    asserted: TenantContext,
    provisioned_tier: Callable[[str | None], str | None],
) -> TenantContext:
    """The tenant context a caller may act for, given what its request asserts.

    - A ``tenant`` token acts for its own tenant at its provisioned tier; asserting
      another tenant or any tier is refused (TenantMismatch).
    - Roles allowed to assert tenant context (gateway, admin) are taken at their word;
      a tier the hub does not know reads as ``free``.
    - Roles allowed to forward it (services, as in the spec's integration examples) get
      the tier of the tenant directory: see :func:`shared.tenancy.capped_tier`.
    - Anyone else sending tenant context is refused (TenantHeadersNotAllowed).

    ``provisioned_tier`` maps a tenant id to its provisioned tier (None if unknown).
    """
    ctx = asserted
    if principal.role is Role.TENANT:
        if ctx.tier is not None or (ctx.tenant_id not in (None, principal.tenant_id)):
            raise TenantMismatch(
                "a tenant token acts for its own tenant at its provisioned tier; "
                "drop the tenant headers",
                details={"tenant_id": principal.tenant_id},
            )
        return replace(ctx, tenant_id=principal.tenant_id, tier=None)
    if not ctx.is_tenant_scoped:
        return ctx
    if principal.allows(Permission.ASSERT_TENANT):
        if ctx.tier is not None:
            ctx = replace(ctx, tier=caller_tier(ctx.tier))
    elif principal.allows(Permission.FORWARD_TENANT):
        ctx = replace(ctx, tier=capped_tier(ctx.tier, provisioned_tier(ctx.tenant_id)))
    else:
        raise TenantHeadersNotAllowed(
            f"a {principal.role.value} token may not assert tenant context headers",
            details={"role": principal.role.value},
        )
    if ctx.tenant_id is not None and not _TENANT_ID.match(ctx.tenant_id):
        raise _invalid_tenant_id()
    return ctx


def _invalid_tenant_id() -> InvalidRequest:
    return InvalidRequest(
        "invalid tenant id", details={"header": "x-tenant-id", "pattern": TENANT_ID_PATTERN}
    )


def parse_tenant_context(
    request: Request, principal: Principal, tenant_id: str | None
) -> TenantContext:
    """The tenant context a request acts for (see :func:`resolve_tenant_context`).

    Read from the ``x-*`` headers, with ``tenant_id`` (the query) as a fallback for the
    tenant id; the tenant is named in the request's audit record.
    """
    ctx = TenantContext.from_headers(request.headers)
    if ctx.tenant_id is None and tenant_id:
        ctx = replace(ctx, tenant_id=tenant_id.strip() or None)
    hub: Hub = request.app.state.hub
    ctx = resolve_tenant_context(principal, ctx, hub.discovery.provisioned_tier)
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
