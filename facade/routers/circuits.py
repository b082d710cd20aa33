"""Circuit breaker endpoints: state per tier and caller-reported outcomes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from facade.errors import error_doc
from facade.models import CircuitReport, CircuitsOut
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import HubDep, Reporter, TenantDep, parse_tenant_context
from facade.routers.services import ServiceNamePath, read_response
from shared import errors

router = APIRouter(prefix="/circuits", tags=["circuits"])


@router.get(
    "/{name}",
    response_model=CircuitsOut,
    responses=error_doc(errors.ServiceNotFound, errors.TierNotAllowed),
)
async def get_circuits(name: ServiceNamePath, hub: HubDep, ctx: TenantDep) -> JSONBytesResponse:
    """The service's circuit for every tier; ``state`` is the caller's tier's."""
    answer = hub.circuit_service.describe(name, ctx)
    return read_response(answer, answer["stale"])


@router.post(
    "/{name}/report",
    response_model=CircuitsOut,
    responses=error_doc(
        errors.ServiceNotFound, errors.TierNotAllowed, errors.Forbidden, errors.BackendUnavailable
    ),
)
async def report_outcome(
    name: ServiceNamePath,
    report: CircuitReport,
    request: Request,
    hub: HubDep,
    principal: Reporter,
) -> JSONBytesResponse:
    """Count the outcome of one call to the service (for one tier, or all).

    Needs a token allowed to report (service, gateway, admin).
    """
    ctx = parse_tenant_context(request, principal, None)
    return json_response(await hub.circuit_service.report(name, report, ctx))
