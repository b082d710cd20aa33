"""Registration and discovery endpoints: parse, call the domain service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request

from facade.access.tokens import Permission, Role
from facade.discovery.balancing import STRATEGIES, Strategy
from facade.errors import error_doc
from facade.models import (
    INSTANCE_ID_PATTERN,
    SERVICE_NAME_PATTERN,
    DiscoveryOut,
    EndpointChoiceOut,
    Heartbeat,
    RegistrationResult,
    ServiceDetailOut,
    ServiceListOut,
    ServiceRegistration,
)
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import (
    TENANT_QUERY_DOC,
    HubDep,
    Registrar,
    TenantDep,
    parse_tenant_context,
)
from facade.routers.resource_requirements import (
    RESERVE_DOC,
    RESOURCE_HEADER_DOC,
    requested,
    resource_check,
)
from facade.runtime import Hub
from shared import errors
from shared.tenancy import HEADER_RESOURCE_REQUIREMENTS

router = APIRouter(prefix="/services", tags=["services"])

ServiceNamePath = Annotated[
    str, Path(pattern=SERVICE_NAME_PATTERN, description="Service name (DNS-label-like).")
]
InstanceIdPath = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN)]
StrategyQuery = Annotated[
    Strategy | None,
    Query(description="p2c (default), round_robin, least_load or random; see docs/selection.md."),
]
LegacyMode = Annotated[
    bool, Query(description="Ignore tenant context and list every service (spec legacy).")
]


def read_response(body: dict[str, Any], stale: bool) -> JSONBytesResponse:
    """A read answer, with ``X-Hub-Stale`` when the view could not reach the backend."""
    return json_response(body, headers={"X-Hub-Stale": "true"} if stale else None)


@router.post(
    "/register",
    status_code=201,
    response_model=RegistrationResult,
    responses={200: {"description": "The same instance re-registered (idempotent)."}},
)
async def register_service(
    reg: ServiceRegistration, hub: HubDep, principal: Registrar
) -> JSONBytesResponse:
    """Register (or refresh) one instance of a service."""
    principal.require_service(reg.name)
    result = await hub.registry.register(reg)
    return json_response(result, status_code=201 if result["created"] else 200)


@router.get("/", response_model=ServiceListOut)
async def list_services(
    request: Request, hub: HubDep, ctx: TenantDep, legacy_mode: LegacyMode = False
) -> JSONBytesResponse:
    """Services the caller's tenant context may use; all of them without context."""
    if legacy_mode and request.state.principal.role is Role.TENANT:
        raise errors.Forbidden("a tenant token cannot use legacy_mode to skip tier filtering")
    answer = hub.discovery.list_services(ctx, legacy_mode=legacy_mode)
    return read_response(answer, answer["stale"])


@router.post("/discover", response_model=ServiceListOut)
async def discover_services(request: Request, hub: HubDep, ctx: TenantDep) -> JSONBytesResponse:
    """The gateway flow: services available to the tenant context in the headers."""
    request.state.audit_skip = True  # a read that happens to be a POST
    answer = hub.discovery.list_services(ctx, legacy_mode=False)
    return read_response(answer, answer["stale"])


_TENANT_HEADER_DOCS = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
    for name in ("x-tenant-id", "x-subscription-tier", "x-user-id", "x-company-id")
] + [
    {
        "name": "tenant_id",
        "in": "query",
        "required": False,
        "description": TENANT_QUERY_DOC,
        "schema": {"type": "string"},
    }
]


_STRATEGY_DOC = {
    "name": "strategy",
    "in": "query",
    "required": False,
    "description": "p2c (default), round_robin, least_load or random; see docs/selection.md.",
    "schema": {"type": "string", "enum": list(STRATEGIES)},
}


@router.get(
    "/discover/{name}",
    response_model=DiscoveryOut,
    responses=error_doc(errors.TierNotAllowed, errors.ServiceNotFound),
    openapi_extra={
        "parameters": [*_TENANT_HEADER_DOCS, _STRATEGY_DOC, RESOURCE_HEADER_DOC, RESERVE_DOC]
    },
)
async def discover_service(name: ServiceNamePath, request: Request) -> JSONBytesResponse:
    """Where to call ``name`` directly: the recommended endpoint and every healthy one.

    Degraded instances only when none is healthy (``degraded_fallback``); nothing when
    the caller's tier has the service's circuit OPEN (``circuit.retry_at`` says until when).

    The hot path: it reads the request directly instead of through dependencies,
    which costs a third of the hub's time per request.
    """
    hub: Hub = request.app.state.hub
    principal = hub.access.authorize(request, Permission.READ)
    ctx = parse_tenant_context(request, principal, request.query_params.get("tenant_id"))
    strategy = request.query_params.get("strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise errors.InvalidRequest(
            f"unknown strategy {strategy!r}",
            details={"errors": [{"field": "strategy", "allowed": list(STRATEGIES)}]},
        )
    # Parsed before the lookup: a bad header is 400/422 whatever the service.
    amounts, reserve = None, False
    if _wants_resources(request):
        amounts, reserve = requested(request)
        request.state.audit_skip = not reserve  # a reservation is a write: audited
    answer = hub.discovery.discover(name, ctx, strategy)
    if amounts is not None:
        check = await resource_check(hub, principal, ctx, amounts, reserve=reserve)
        answer = {**answer, "resource_check": check}
    return read_response(answer, answer["stale"])


def _wants_resources(request: Request) -> bool:
    """Whether the request names resources or a reservation (cheap, for the hot path)."""
    return HEADER_RESOURCE_REQUIREMENTS in request.headers or "reserve" in request.query_params


@router.get(
    "/{name}",
    response_model=ServiceDetailOut,
    responses=error_doc(errors.ServiceNotFound, errors.TierNotAllowed),
)
async def get_service(name: ServiceNamePath, hub: HubDep, ctx: TenantDep) -> JSONBytesResponse:
    """One service and all of its instances (403 ``tier_not_allowed`` as discovery)."""
    answer = hub.discovery.describe(name, ctx)
    return read_response(answer, answer["stale"])


@router.get(
    "/{name}/endpoint",
    response_model=EndpointChoiceOut,
    responses=error_doc(
        errors.ServiceNotFound, errors.TierNotAllowed, errors.CircuitOpen, errors.NoHealthyEndpoint
    ),
)
async def load_balanced_endpoint(
    name: ServiceNamePath, hub: HubDep, ctx: TenantDep, strategy: StrategyQuery = None
) -> JSONBytesResponse:
    """The seed's ``get_load_balanced_endpoint``: ``{"host", "port", "load", ...}``."""
    answer = hub.discovery.endpoint(name, ctx, strategy)
    return read_response(answer, answer["stale"])


@router.delete(
    "/{name}/instances/{instance_id}",
    responses=error_doc(errors.InstanceNotFound),
)
async def deregister_instance(
    name: ServiceNamePath, instance_id: InstanceIdPath, hub: HubDep, principal: Registrar
) -> JSONBytesResponse:
    """Remove one instance from the catalog now."""
    principal.require_service(name)
    return json_response(await hub.registry.deregister(name, instance_id))


@router.put(
    "/{name}/instances/{instance_id}/heartbeat",
    responses=error_doc(errors.InstanceNotFound),
)
async def heartbeat(
    name: ServiceNamePath,
    instance_id: InstanceIdPath,
    hub: HubDep,
    principal: Registrar,
    beat: Annotated[Heartbeat | None, Body()] = None,
) -> JSONBytesResponse:
    """Renew the instance's TTL; optionally report its load."""
    principal.require_service(name)
    result = await hub.registry.heartbeat(name, instance_id, beat or Heartbeat())
    return json_response(result)
