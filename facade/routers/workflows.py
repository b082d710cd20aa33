"""Workflow coordination endpoints: stored DAGs and the spec's coordination plan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from facade.access.tenant_context import asserted_tenant_context, resolve_tenant_context
from facade.coordination.workflows import WorkflowIn
from facade.errors import error_doc
from facade.models import SERVICE_NAME_PATTERN
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import Administrator, HubDep, Reader
from shared import errors
from shared.tenancy import HEADER_SUBSCRIPTION_TIER, HEADER_TENANT_ID, HEADER_USER_ID

router = APIRouter(prefix="/coordination", tags=["coordination"])

WorkflowIdPath = Annotated[str, Path(pattern=SERVICE_NAME_PATTERN)]

_CONTEXT_FIELDS = {
    "tenant_id": HEADER_TENANT_ID,
    "subscription_tier": HEADER_SUBSCRIPTION_TIER,
    "user_id": HEADER_USER_ID,
}


@router.get("/workflows")
async def list_workflows(hub: HubDep, _: Reader) -> JSONBytesResponse:
    """Every defined workflow."""
    items = hub.workflows.all()
    return json_response({"workflows": items, "count": len(items)})


@router.put(
    "/workflows/{workflow_id}",
    status_code=201,
    responses={
        200: {"description": "An existing workflow was replaced."},
        **error_doc(errors.InvalidRequest),
    },
)
async def put_workflow(
    workflow_id: WorkflowIdPath, body: WorkflowIn, hub: HubDep, _: Administrator
) -> JSONBytesResponse:
    """Define (or replace) a workflow: steps naming registered services, a DAG."""
    record, created = await hub.workflows.put(workflow_id, body)
    return json_response(record, status_code=201 if created else 200)


@router.get("/workflows/{workflow_id}", responses=error_doc(errors.WorkflowNotFound))
async def get_workflow(workflow_id: WorkflowIdPath, hub: HubDep, _: Reader) -> JSONBytesResponse:
    """One workflow definition (steps in dependency order)."""
    return json_response(hub.workflows.get(workflow_id))


@router.delete("/workflows/{workflow_id}", responses=error_doc(errors.WorkflowNotFound))
async def delete_workflow(
    workflow_id: WorkflowIdPath, hub: HubDep, _: Administrator
) -> JSONBytesResponse:
    """Remove a workflow definition."""
    return json_response(await hub.workflows.delete(workflow_id))


@router.post(
    "/workflow/{workflow_id}",
    responses=error_doc(errors.WorkflowNotFound, errors.TenantMismatch),
)
async def coordinate_workflow(
    workflow_id: WorkflowIdPath,
    request: Request,
    hub: HubDep,
    principal: Reader,
    tenant_context: Annotated[dict[str, Any] | None, Body()] = None,
) -> JSONBytesResponse:
    """The spec's coordination plan for the caller's tenant context.

    The context comes from the ``x-*`` headers; the spec's ``tenant_context`` body
    (``tenant_id``, ``subscription_tier``, ``user_id``) fills in what the headers leave
    out, and is checked against the caller's role exactly as the headers are.
    """
    request.state.audit_skip = True  # a read that happens to be a POST
    headers = dict(request.headers)
    for field, header in _CONTEXT_FIELDS.items():
        value = (tenant_context or {}).get(field)
        if value is not None and header not in headers:
            if not isinstance(value, str):
                raise errors.InvalidRequest(
                    f"tenant_context.{field} must be a string",
                    details={"errors": [{"field": f"tenant_context.{field}"}]},
                )
            headers[header] = value
    ctx = resolve_tenant_context(
        principal,
        asserted_tenant_context(headers, None),
        hub.discovery.provisioned_tier,
    )
    if ctx.tenant_id is not None:
        request.state.audit_tenant = ctx.tenant_id
    return json_response(hub.workflows.plan(workflow_id, ctx))
