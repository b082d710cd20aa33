"""Service health endpoints (the seed's "Health Monitoring" shape)."""

from __future__ import annotations

from fastapi import APIRouter

from facade.errors import error_doc
from facade.models import ServiceHealthDetailOut, ServiceHealthOut
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import HubDep, TenantDep
from facade.routers.services import ServiceNamePath, read_response
from shared import errors

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/services", response_model=dict[str, ServiceHealthOut])
async def services_health(hub: HubDep, ctx: TenantDep) -> JSONBytesResponse:
    """``{"<service>": {"status", "latency", "last_check"}, ...}``: best instance status,
    mean latency of the instances in that status, newest check (``X-Hub-Stale`` when the
    backend is unreachable)."""
    answer = hub.health_checks.services(ctx)
    return json_response(answer, headers={"X-Hub-Stale": "true"} if hub.view.stale else None)


@router.get(
    "/services/{name}",
    response_model=ServiceHealthDetailOut,
    responses=error_doc(errors.ServiceNotFound, errors.TierNotAllowed),
)
async def service_health(name: ServiceNamePath, hub: HubDep, ctx: TenantDep) -> JSONBytesResponse:
    """One service's health and every instance's latest check result."""
    answer = hub.health_checks.service(name, ctx)
    return read_response(answer, answer["stale"])
