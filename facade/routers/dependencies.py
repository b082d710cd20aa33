"""Request dependencies: the hub runtime, the authorized caller and its tenant context."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from facade.access.tenant_context import asserted_tenant_context, resolve_tenant_context
from facade.access.tokens import Permission, Principal
from facade.runtime import Hub
from shared.tenancy import TenantContext

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
    """The tenant context a request acts for (see :func:`resolve_tenant_context`).

    Read from the ``x-*`` headers, with ``tenant_id`` (the query) as a fallback for the
    tenant id; the tenant is named in the request's audit record.
    """
    hub: Hub = request.app.state.hub
    asserted = asserted_tenant_context(request.headers, tenant_id)
    ctx = resolve_tenant_context(principal, asserted, hub.discovery.provisioned_tier)
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
