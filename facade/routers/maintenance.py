"""``/admin/maintenance``: the hub's read-only mode (docs/operations.md, "Maintenance mode")."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from facade.coordination.maintenance import DEFAULT_RETRY_AFTER
from facade.errors import error_doc
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import Administrator, HubDep
from shared.errors import Forbidden, InvalidRequest, Unauthorized

router = APIRouter(tags=["maintenance"])

_ERRORS = error_doc(Unauthorized, Forbidden, InvalidRequest)


class MaintenanceRequest(BaseModel):
    """Read-only mode on (or off)."""

    model_config = ConfigDict(extra="forbid")

    read_only: bool = Field(description="true: refuse writes on every replica; false: accept them.")
    reason: str = Field(
        "maintenance",
        min_length=1,
        max_length=200,
        description="Shown to every refused caller (no secrets).",
    )
    retry_after: int = Field(
        DEFAULT_RETRY_AFTER, ge=1, le=3600, description="Retry-After of the refusals (seconds)."
    )


@router.get("/admin/maintenance", responses=_ERRORS)
async def get_maintenance(hub: HubDep, _: Administrator) -> JSONBytesResponse:
    """Whether the hub is read-only, and this replica's in-flight writes."""
    return json_response(hub.maintenance.describe())


@router.put("/admin/maintenance", responses=_ERRORS)
async def put_maintenance(
    body: MaintenanceRequest, hub: HubDep, caller: Administrator
) -> JSONBytesResponse:
    """Turn read-only mode on (every replica refuses writes with ``503 read_only``; reads,
    streams and heartbeats keep working) or off. Answers once this replica refuses writes
    and its writes already under way have finished (``replica.drained``)."""
    if not body.read_only:
        return json_response(await hub.maintenance.disable())
    answer = await hub.maintenance.enable(
        reason=body.reason, retry_after=body.retry_after, by=caller.token_id
    )
    return json_response(answer)


@router.delete("/admin/maintenance", responses=_ERRORS)
async def delete_maintenance(hub: HubDep, _: Administrator) -> JSONBytesResponse:
    """Turn read-only mode off (idempotent); ``read_only_seconds`` is how long it was on."""
    return json_response(await hub.maintenance.disable())
