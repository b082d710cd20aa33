"""Tenant provisioning and tenant resource quotas: parse, call the domain service, answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Request

from facade.access.tokens import Principal, Role
from facade.errors import error_doc
from facade.models import TENANT_ID_PATTERN
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import Configurator, HubDep, Reader, Reporter
from facade.routers.http_conditions import etag, parse_if_match
from facade.runtime import Hub
from facade.tenancy.api_models import ResourceAmount, TenantCreate, TenantUpdate
from facade.tenancy.quotas import RESOURCES
from shared import errors
from shared.tenancy import TenantContext

router = APIRouter(tags=["tenants"])

TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="Tenant id.")]
ResourcePath = Annotated[str, Path(description="One of: " + ", ".join(sorted(RESOURCES)) + ".")]
AmountBody = Annotated[ResourceAmount | None, Body()]


def for_tenant(principal: Principal, request: Request, tenant_id: str) -> None:
    """Refuse a tenant-bound token addressing another tenant; name the tenant in the audit."""
    principal.require_tenant(tenant_id)
    request.state.audit_tenant = tenant_id


async def for_known_tenant(
    hub: Hub, principal: Principal, request: Request, tenant_id: str
) -> None:
    """:func:`for_tenant`, and wait for a tenant this replica has not seen yet."""
    for_tenant(principal, request, tenant_id)
    await hub.tenants.await_visible(tenant_id)


def author_of(principal: Principal, request: Request) -> str:
    """Who a write is recorded as: the asserted user (x-user-id) or the token's name."""
    user = TenantContext.from_headers(request.headers).user_id
    return user or principal.name or principal.token_id


def _tenant(body: dict[str, Any], status_code: int = 200) -> JSONBytesResponse:
    return json_response(body, status_code=status_code, headers={"ETag": etag(body["version"])})


@router.post("/tenants", status_code=201, responses=error_doc(errors.TenantExists))
async def create_tenant(
    req: TenantCreate, request: Request, hub: HubDep, _: Configurator
) -> JSONBytesResponse:
    """Provision a tenant; usable by the next request on every replica."""
    request.state.audit_tenant = req.tenant_id
    record = await hub.tenants.create(req.tenant_id, req.subscription_tier, req.company_id)
    return _tenant(record, 201)


@router.get("/tenants")
async def list_tenants(hub: HubDep, caller: Reader) -> JSONBytesResponse:
    """Every provisioned tenant (a tenant token sees only its own)."""
    tenants = hub.tenants.list()
    if caller.role is Role.TENANT:
        tenants = [t for t in tenants if t["tenant_id"] == caller.tenant_id]
    return json_response({"tenants": tenants, "count": len(tenants)})


@router.get("/tenants/{tenant_id}", responses=error_doc(errors.TenantNotFound))
async def get_tenant(
    tenant_id: TenantIdPath, request: Request, hub: HubDep, caller: Reader
) -> JSONBytesResponse:
    """One tenant; the ETag is its version."""
    await for_known_tenant(hub, caller, request, tenant_id)
    return _tenant(hub.tenants.get(tenant_id))


@router.patch(
    "/tenants/{tenant_id}",
    responses=error_doc(errors.TenantNotFound, errors.PreconditionFailed),
)
async def update_tenant(
    tenant_id: TenantIdPath,
    req: TenantUpdate,
    request: Request,
    hub: HubDep,
    _: Configurator,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONBytesResponse:
    """Change the tenant's tier (its config defaults follow at once) or company id."""
    request.state.audit_tenant = tenant_id
    versions = parse_if_match(if_match)
    record = await hub.tenants.update(
        tenant_id,
        subscription_tier=req.subscription_tier,
        company_id=req.company_id,
        if_match=None if versions is None or versions == "*" else versions,
    )
    return _tenant(record)


@router.delete("/tenants/{tenant_id}", responses=error_doc(errors.TenantNotFound))
async def delete_tenant(
    tenant_id: TenantIdPath, request: Request, hub: HubDep, caller: Configurator
) -> JSONBytesResponse:
    """Remove the tenant with its overrides (kept in history), usage and webhooks."""
    request.state.audit_tenant = tenant_id
    return json_response(await hub.tenants.delete(tenant_id, author=author_of(caller, request)))


@router.get("/tenants/{tenant_id}/usage", responses=error_doc(errors.TenantNotFound))
async def tenant_usage(
    tenant_id: TenantIdPath, request: Request, hub: HubDep, caller: Reader
) -> JSONBytesResponse:
    """Used, limit, remaining and utilization of every quota-controlled resource."""
    await for_known_tenant(hub, caller, request, tenant_id)
    return json_response(hub.quotas.usage(tenant_id))


@router.post(
    "/tenants/{tenant_id}/resources/{resource_type}/check",
    responses=error_doc(errors.TenantNotFound, errors.InvalidRequest),
)
async def check_resource(
    tenant_id: TenantIdPath,
    resource_type: ResourcePath,
    request: Request,
    hub: HubDep,
    caller: Reporter,
    req: AmountBody = None,
) -> JSONBytesResponse:
    """Whether ``amount`` more would fit now (reserves nothing)."""
    await for_known_tenant(hub, caller, request, tenant_id)
    amount = (req or ResourceAmount()).amount
    return json_response(hub.quotas.check(tenant_id, resource_type, amount))


@router.post(
    "/tenants/{tenant_id}/resources/{resource_type}/allocate",
    responses=error_doc(errors.TenantNotFound, errors.InvalidRequest, errors.QuotaExceeded),
)
async def allocate_resource(
    tenant_id: TenantIdPath,
    resource_type: ResourcePath,
    request: Request,
    hub: HubDep,
    caller: Reporter,
    req: AmountBody = None,
) -> JSONBytesResponse:
    """Reserve ``amount`` atomically; 429 naming the resource, limit and usage if it won't fit."""
    await for_known_tenant(hub, caller, request, tenant_id)
    amount = (req or ResourceAmount()).amount
    return json_response(await hub.quotas.allocate(tenant_id, resource_type, amount))


@router.post(
    "/tenants/{tenant_id}/resources/{resource_type}/release",
    responses=error_doc(
        errors.TenantNotFound, errors.InvalidRequest, errors.QuotaReleaseExceedsUsage
    ),
)
async def release_resource(
    tenant_id: TenantIdPath,
    resource_type: ResourcePath,
    request: Request,
    hub: HubDep,
    caller: Reporter,
    req: AmountBody = None,
) -> JSONBytesResponse:
    """Give back ``amount``; 409 if the tenant holds less (usage never goes negative)."""
    await for_known_tenant(hub, caller, request, tenant_id)
    amount = (req or ResourceAmount()).amount
    return json_response(await hub.quotas.release(tenant_id, resource_type, amount))
