"""Telemetry in (``POST /telemetry``) and predictive scaling (``POST /services/scale/predict``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from facade.errors import error_doc
from facade.models import SERVICE_NAME_PATTERN
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import (
    TENANT_QUERY_DOC,
    HubDep,
    Reader,
    Reporter,
    parse_tenant_context,
)
from facade.telemetry.ingest import TelemetryBatch
from facade.telemetry.scaling import ScalePredictRequest
from shared import errors

router = APIRouter(tags=["telemetry"])


@router.post(
    "/telemetry",
    status_code=201,
    responses=error_doc(errors.InvalidRequest, errors.Forbidden, errors.PayloadTooLarge),
)
async def report_telemetry(
    batch: TelemetryBatch, hub: HubDep, caller: Reporter
) -> JSONBytesResponse:
    """Store up to 10,000 points of one (service, metric, tenant) series.

    Points may be in the past and in any order; the same ts replaces. One bad point
    refuses the whole call (422), nothing stored. A service token reports only its own
    services; a tenant token cannot report.
    """
    caller.require_service(batch.service)
    return json_response(await hub.telemetry.ingest(batch), status_code=201)


@router.post(
    "/services/scale/predict",
    responses=error_doc(errors.InvalidRequest, errors.ServiceNotFound, errors.TierNotAllowed),
)
async def predict_scaling(
    request: Request,
    hub: HubDep,
    caller: Reader,
    service_name: Annotated[
        str | None, Query(pattern=SERVICE_NAME_PATTERN, description="As in the spec.")
    ] = None,
    tenant_id: Annotated[str | None, Query(description=TENANT_QUERY_DOC)] = None,
    body: Annotated[ScalePredictRequest | None, Body()] = None,
) -> JSONBytesResponse:
    """Forecast the service's load (``metric``, default ``requests``) over
    ``horizon_seconds`` and recommend an instance count within the tenant's limits.

    ``service_name`` as a query parameter (the spec) or in the JSON body.
    """
    request.state.audit_skip = True  # a read that happens to be a POST
    req = body or ScalePredictRequest()
    name = service_name or req.service_name
    if name is None:
        raise errors.InvalidRequest(
            "service_name is required (query parameter or JSON body)",
            details={"errors": [{"field": "service_name", "problem": "missing"}]},
        )
    ctx = parse_tenant_context(request, caller, tenant_id or req.tenant_id)
    req = req.model_copy(update={"service_name": name})
    return json_response(await hub.scaling.predict(req, ctx))
