"""System-wide backups of services: `/coordination/backups` (issue 14)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from facade.coordination.system_backups import SystemBackups
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import Administrator, HubDep
from facade.runtime import Hub
from shared.errors import ServiceUnavailable

router = APIRouter(prefix="/coordination", tags=["coordination"])

RunId = Annotated[str, Path(pattern=r"^[0-9]{20}-[0-9a-f]{8}$")]


def _coordinator(hub: Hub) -> SystemBackups:
    if hub.system_backups is None:
        raise ServiceUnavailable("system-wide backups are off (HUB_SYSTEM_BACKUPS=false)")
    return hub.system_backups


@router.post("/backups", status_code=202)
async def start_system_backup(hub: HubDep, caller: Administrator) -> JSONBytesResponse:
    """Start a system-wide backup: one id and epoch; the elected replica calls every
    service that declared a backup endpoint, dependencies first. Poll the returned run."""
    run = await _coordinator(hub).start_run(requested_by=caller.token_id)
    return json_response(run, status_code=202)


@router.get("/backups")
async def list_system_backups(
    hub: HubDep, _: Administrator, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> JSONBytesResponse:
    """Runs, newest first, with every service's status."""
    return json_response({"runs": await _coordinator(hub).list_runs(limit)})


@router.get("/backups/{backup_id}")
async def get_system_backup(hub: HubDep, _: Administrator, backup_id: RunId) -> JSONBytesResponse:
    """One run: state (requested, running, succeeded, partial) and per-service status."""
    return json_response(await _coordinator(hub).get_run(backup_id))
