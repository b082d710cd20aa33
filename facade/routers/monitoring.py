"""Alerts and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response

from facade.context import HubDep
from facade.responses import JSONBytesResponse, json_response

router = APIRouter(tags=["monitoring"])


@router.get("/alerts")
async def alerts(hub: HubDep) -> JSONBytesResponse:
    """Active alerts: tenant resources at or above 80 % of their limit (critical at 100 %)."""
    found = hub.quotas.alerts()
    return json_response({"alerts": found, "count": len(found), "stale": hub.view.stale})


@router.get("/metrics", response_class=Response)
async def metrics(hub: HubDep) -> Response:
    """Prometheus text format: the process's default registry plus this hub's gauges."""
    body = generate_latest(REGISTRY) + generate_latest(hub.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
