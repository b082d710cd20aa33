"""WebSocket config push per tenant: ``/config/{tenant_id}/ws``.

The SSE stream's twin (``GET /config/{tenant_id}/watch``), with the same rules: a token
that may read (a tenant token only its own tenant), the same tier handling, the effective
config at every new version, resume with ``?last_version=N`` (or ``Last-Event-ID``), and
the same end when the caller's grant ends (token revoked or expired, tenant removed).

Frames are JSON text: ``{"type": "config", "id": <version>, "data": <the SSE event's
data>}``, ``{"type": "keepalive"}`` while idle, and ``{"type": "error", "error": {code,
message, details}}`` before the hub closes the socket with code ``4000 + <HTTP status>``
(e.g. 4401 when the grant ended). A handshake the hub refuses is answered with an HTTP
error in the standard shape when the server supports WebSocket denial responses
(uvicorn does), else accepted, sent the error frame and closed with that code.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from facade.access.tenant_context import asserted_tenant_context, resolve_tenant_context
from facade.access.tokens import Grant, Permission
from facade.models import TENANT_ID_PATTERN
from facade.responses import json_response
from facade.routers.http_conditions import MAX_VERSION
from facade.runtime import Hub
from shared import errors
from shared.errors import http_status_for

router = APIRouter(tags=["config"])

_TENANT_ID = re.compile(TENANT_ID_PATTERN)
_DENIAL_EXTENSION = "websocket.http.response"
KEEPALIVE_FRAME = '{"type":"keepalive"}'


def close_code(error: errors.HubError) -> int:
    """The WebSocket close code for ``error``: 4000 + its HTTP status (4401, 4403...)."""
    return 4000 + http_status_for(error)


def last_version(websocket: WebSocket) -> int | None:
    """``?last_version=N`` (or ``Last-Event-ID``): resume after that version."""
    raw = websocket.query_params.get("last_version") or websocket.headers.get("last-event-id")
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if not value.isdigit() or len(value) > 16 or int(value) > MAX_VERSION:
        raise errors.InvalidRequest(
            "last_version must be a version number", details={"value": raw[:50]}
        )
    return int(value)


@router.websocket("/config/{tenant_id}/ws")
async def config_socket(websocket: WebSocket, tenant_id: str) -> None:
    """Push the tenant's effective config at every new version over a WebSocket."""
    hub: Hub = websocket.app.state.hub
    try:
        if not _TENANT_ID.match(tenant_id):
            raise errors.InvalidRequest("invalid tenant id", details={"tenant_id": tenant_id[:64]})
        caller = hub.access.authorize(websocket, Permission.READ)
        caller.require_tenant(tenant_id)
        after = last_version(websocket)
        asserted = asserted_tenant_context(websocket.headers, None)
        tier = resolve_tenant_context(caller, asserted, hub.discovery.provisioned_tier).tier
    except errors.HubError as exc:
        await _refuse(websocket, exc)
        return
    grant = hub.grants.open(caller)
    try:
        await websocket.accept()
        events = hub.config.subscribe(
            tenant_id,
            asserted_tier=tier,
            after=after,
            keepalive=hub.settings.config_keepalive,
            until=grant.ended,
        )
        await _push_until_closed(websocket, events, grant)
    finally:
        hub.grants.close(grant)


async def _push_until_closed(websocket: WebSocket, events: Any, grant: Grant) -> None:
    """Send every version until the subscription ends or the client goes away."""

    async def push() -> None:
        async for body in events:
            if body is None:
                await websocket.send_text(KEEPALIVE_FRAME)
                continue
            frame = {"type": "config", "id": body["version"], "data": body}
            await websocket.send_text(orjson.dumps(frame).decode())
        if grant.ended.is_set():  # the token was revoked or expired, or its tenant removed
            error = grant.error()
            await websocket.send_text(
                orjson.dumps({"type": "error", **error.to_payload()}).decode()
            )
            await websocket.close(code=close_code(error))
        else:
            await websocket.close(code=1001)  # the hub is stopping

    async def listen() -> None:
        # The client sends nothing we need; reading notices it leaving at once.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    pusher = asyncio.ensure_future(push())
    listener = asyncio.ensure_future(listen())
    try:
        await asyncio.wait({pusher, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pusher, listener):
            task.cancel()
        results = await asyncio.gather(pusher, listener, return_exceptions=True)
    for result in results:
        # a send to a client that just left is its disconnect, not a failure
        if isinstance(result, Exception) and not isinstance(
            result, WebSocketDisconnect | RuntimeError | OSError
        ):
            raise result


async def _refuse(websocket: WebSocket, error: errors.HubError) -> None:
    """Refuse the handshake: an HTTP error in the standard shape when the server can send
    one, else an error frame and close code ``4000 + status``."""
    if _DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            json_response(error.to_payload(), status_code=http_status_for(error))
        )
        return
    await websocket.accept()
    await websocket.send_text(orjson.dumps({"type": "error", **error.to_payload()}).decode())
    await websocket.close(code=close_code(error))
