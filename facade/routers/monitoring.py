"""Alerts and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response

from facade.access.tokens import Role
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import HubDep, Reader
from shared.errors import Forbidden

router = APIRouter(tags=["monitoring"])


@router.get("/alerts")
async def alerts(hub: HubDep, caller: Reader) -> JSONBytesResponse:
    """Active alerts: tenant resources at or above 80 % of their limit (critical at 100 %).

    A tenant token sees only its own tenant's alerts.
    """
    found = hub.quotas.alerts()
    if caller.role is Role.TENANT:
        found = [a for a in found if a["tenant_id"] == caller.tenant_id]
    return json_response({"alerts": found, "count": len(found), "stale": hub.view.stale})


@router.get("/metrics", response_class=Response)
async def metrics(hub: HubDep, caller: Reader) -> Response:
    """Prometheus text format: the process's default registry plus this hub's gauges.

    Not for tenant tokens: the gauges name every tenant.
    """
    if caller.role is Role.TENANT:
        raise Forbidden("tenant tokens may not read hub-wide metrics; use /tenants/{id}/usage")
    body = generate_latest(REGISTRY) + generate_latest(hub.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
