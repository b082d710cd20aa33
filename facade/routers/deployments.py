"""Deployment endpoints: start, read, control and follow rollouts (docs/deployments.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import StreamingResponse

from facade.coordination.deployments import DeploymentIn
from facade.errors import error_doc
from facade.models import INSTANCE_ID_PATTERN, SERVICE_NAME_PATTERN
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import Administrator, HubDep, Reader
from shared import errors

router = APIRouter(prefix="/deployments", tags=["deployments"])

DeploymentIdPath = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN)]
State = Literal["running", "paused", "canary", "succeeded", "failed", "aborted"]


@router.post(
    "",
    status_code=201,
    responses=error_doc(errors.DeploymentActive, errors.ServiceNotFound, errors.InvalidRequest),
)
async def start_deployment(body: DeploymentIn, hub: HubDep, _: Administrator) -> JSONBytesResponse:
    """Start a rollout: the spec's ``coordinate_deployment`` body; 409 while another runs."""
    return json_response(await hub.deployments.create(body), status_code=201)


@router.get("")
async def list_deployments(
    hub: HubDep,
    _: Reader,
    service: Annotated[str | None, Query(pattern=SERVICE_NAME_PATTERN)] = None,
    state: State | None = None,
) -> JSONBytesResponse:
    """Deployments, newest first (without their events)."""
    items = hub.deployments.all(service, state)
    return json_response({"deployments": items, "count": len(items)})


@router.get("/{deployment_id}", responses=error_doc(errors.DeploymentNotFound))
async def get_deployment(
    deployment_id: DeploymentIdPath, hub: HubDep, _: Reader
) -> JSONBytesResponse:
    """One deployment: plan, state, current batch and events."""
    return json_response(hub.deployments.get(deployment_id))


@router.post(
    "/{deployment_id}/{action}",
    responses=error_doc(errors.DeploymentNotFound, errors.DeploymentActive),
)
async def control_deployment(
    deployment_id: DeploymentIdPath,
    action: Literal["pause", "resume", "abort", "promote"],
    hub: HubDep,
    _: Administrator,
) -> JSONBytesResponse:
    """Pause, resume, abort (stops and names the version to roll back to) or promote (a
    canary continues as a rolling update)."""
    return json_response(await hub.deployments.control(deployment_id, action))


def _last_event_id(request: Request) -> int:
    raw = (request.headers.get("last-event-id") or "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or len(raw) > 16:
        raise errors.InvalidRequest("Last-Event-ID must be an event number", details={})
    return int(raw)


@router.get(
    "/{deployment_id}/events",
    response_class=StreamingResponse,
    responses=error_doc(errors.DeploymentNotFound),
)
async def deployment_events(
    deployment_id: DeploymentIdPath, request: Request, hub: HubDep, _: Reader
) -> StreamingResponse:
    """Server-sent events of one deployment (``id`` = event number; ``Last-Event-ID``
    resumes); the stream ends after the deployment's last event."""
    after = _last_event_id(request)
    hub.deployments.get(deployment_id)  # 404 before the stream starts
    events = hub.deployments.subscribe(
        deployment_id, after=after, keepalive=hub.settings.deployment_keepalive
    )

    async def encode() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        async for event in events:
            if event is None:
                yield b": keep-alive\n\n"
                continue
            yield b"id: %d\nevent: %s\ndata: %s\n\n" % (
                event["seq"],
                str(event["type"]).encode(),
                orjson.dumps(event),
            )

    return StreamingResponse(
        encode(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
