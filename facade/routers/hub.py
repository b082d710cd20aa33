"""The hub's own endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from facade.models import HubHealthOut
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import HubDep

router = APIRouter(tags=["hub"])


@router.get("/health", response_model=HubHealthOut)
async def hub_health(hub: HubDep) -> JSONBytesResponse:
    """Backend reachability, the view's revision and whether answers are stale.

    503 while the hub has never synced with its backend (it can answer nothing yet).
    """
    report = await hub.health()
    return json_response(report, status_code=503 if report["status"] == "unhealthy" else 200)
