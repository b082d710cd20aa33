"""ErrorDNA reports from services and the top error groups (DESIGN.md section 13)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from facade.errors import error_doc
from facade.models import SERVICE_NAME_PATTERN, TENANT_ID_PATTERN
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import HubDep, Reader, Reporter
from facade.routers.tenants import for_tenant
from facade.telemetry.error_groups import ErrorReport
from shared import errors

router = APIRouter(prefix="/errors", tags=["errors"])


@router.post(
    "",
    status_code=201,
    responses={
        200: {"description": "A known group: counted again."},
        **error_doc(errors.InvalidRequest, errors.Forbidden),
    },
)
async def report_error(report: ErrorReport, hub: HubDep, caller: Reporter) -> JSONBytesResponse:
    """Count one ErrorDNA group report; 201 for a new group, 200 for a known one.

    Needs a token allowed to report; a service token only for its own services.
    """
    caller.require_service(report.service_name)
    result = await hub.error_groups.report(report)
    return json_response(result, status_code=201 if result["created"] else 200)


@router.get("", responses=error_doc(errors.InvalidRequest, errors.TenantMismatch))
async def top_errors(
    request: Request,
    hub: HubDep,
    caller: Reader,
    service: Annotated[str | None, Query(pattern=SERVICE_NAME_PATTERN)] = None,
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
    category: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JSONBytesResponse:
    """The most reported error groups, per service and tenant if asked.

    A tenant token sees only its own tenant's groups, counted for that tenant.
    """
    if caller.tenant_id is not None:
        tenant_id = tenant_id or caller.tenant_id
    if tenant_id is not None:
        for_tenant(caller, request, tenant_id)
    answer = hub.error_groups.top(
        service=service, tenant_id=tenant_id, category=category, limit=limit
    )
    return json_response(answer, headers={"X-Hub-Stale": "true"} if answer["stale"] else None)
