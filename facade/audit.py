"""The audit log: every write through the API, who made it and how it ended.

Records live in the backend under ``audit/`` (not mirrored by the view; they are only
ever read by ``GET /audit``). Keys start with a nanosecond timestamp so a range read is
chronological. The token id is recorded, never the token.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import Backend
from facade.registry import utc_now
from facade.security import Permission
from shared.errors import HubError
from shared.tenancy import HEADER_COMPANY_ID, HEADER_CORRELATION_ID, HEADER_TENANT_ID

log = logging.getLogger("central_hub.audit")

AUDIT_PREFIX = "audit/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditLog:
    """Appends and queries audit records."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def record(self, entry: dict[str, Any]) -> None:
        """Store one record; failure is logged, never turned into the caller's error."""
        key = f"{AUDIT_PREFIX}{time.time_ns():020d}-{secrets.token_hex(3)}"
        try:
            await self.backend.put(key, orjson.dumps(entry | {"id": key[len(AUDIT_PREFIX) :]}))
        except HubError as exc:
            log.error("audit record lost (%s): %s", exc, entry)

    async def query(
        self,
        *,
        tenant_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Newest first, filtered; ``before`` is the ``next`` cursor of a previous page."""
        snapshot = await self.backend.range(AUDIT_PREFIX)
        entries: list[dict[str, Any]] = []
        for kv in reversed(snapshot.items):
            entry = orjson.loads(kv.value)
            if before is not None and entry["id"] >= before:
                continue
            if tenant_id is not None and entry.get("tenant_id") != tenant_id:
                continue
            if actor is not None and entry.get("token_id") != actor:
                continue
            if action is not None and action not in entry.get("action", ""):
                continue
            entries.append(entry)
            if len(entries) > limit:
                break
        more = len(entries) > limit
        entries = entries[:limit]
        return {"entries": entries, "next": entries[-1]["id"] if more else None}


class AuditMiddleware:
    """Records every write request after it has been answered (success or refusal)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            state = scope.get("state") or {}
            if not state.get("audit_skip"):
                await self._record(scope, state, status)

    async def _record(self, scope: Scope, state: dict[str, Any], status: int) -> None:
        hub = scope["app"].state.hub
        principal = state.get("principal")
        headers = dict(scope.get("headers") or ())
        correlation = headers.get(HEADER_CORRELATION_ID.encode(), b"").decode("latin-1")[:128]
        route = scope.get("route")
        tenant = state.get("audit_tenant") or (principal.tenant_id if principal else None)
        if tenant is None and principal is not None and principal.allows(Permission.ASSERT_TENANT):
            asserted = headers.get(HEADER_TENANT_ID.encode()) or headers.get(
                HEADER_COMPANY_ID.encode()
            )
            tenant = asserted.decode("latin-1")[:128] if asserted else None
        await hub.audit.record(
            {
                "at": utc_now(),
                "token_id": principal.token_id if principal else None,
                "role": principal.role.value if principal else None,
                "tenant_id": tenant,
                "action": f"{scope['method']} {getattr(route, 'path', scope['path'])}",
                "path": scope["path"][:512],
                "status": status,
                "outcome": "ok" if status < 400 else "refused" if status < 500 else "error",
                "correlation_id": correlation or None,
            }
        )
