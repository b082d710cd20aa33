"""Maintenance (read-only) mode: writes refused on every replica, reads keep working.

The mode is one backend key, :data:`MAINTENANCE_KEY`. Every replica reads it from its
watch-fed view, so turning it on through any replica reaches all of them within one watch
round-trip, and a replica that restarts comes up in the same mode. ``central-hub migrate``
turns it on for the copy so that no acknowledged write can land after the snapshot.

What is refused is decided per request *before* the route runs (:class:`ReadOnlyGuard`),
so a refused write has written nothing. Allowed while the mode is on:

* every ``GET``/``HEAD``/``OPTIONS`` (discovery, config reads, long polls, SSE streams);
* requests that only read although they are ``POST`` (:data:`READS_BY_POST`);
* heartbeats (:data:`ALLOWED_WRITES`): they renew the leases that keep TTL instances in
  the catalog; refusing them for the length of a copy would expire live instances;
* telemetry samples, which go to the replica's own telemetry store, not the backend;
* the maintenance routes themselves, so the mode can always be turned off.

Every other method on every other path is refused, including routes added later: a new
route is a write until it is listed here.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters import Backend
from facade.errors import error_response
from facade.state.view import StateView
from shared.errors import InvalidRequest, ReadOnly
from shared.timestamps import iso_utc

MAINTENANCE_KEY = "maintenance/read_only"
"""The one key holding the mode; absent means writable. Never part of a backup."""

MAINTENANCE_PATH = "/admin/maintenance"

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

READS_BY_POST: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("POST", re.compile(r"^/services/discover$")),
    ("POST", re.compile(r"^/services/scale/predict$")),
    ("POST", re.compile(r"^/tenants/[^/]+/resources/[^/]+/check$")),
    ("POST", re.compile(r"^/admin/backups$")),  # the snapshot migrate copies
    ("POST", re.compile(r"^/coordination/workflow/[^/]+$")),  # a plan, computed from the view
)
"""Routes that use ``POST`` for a body but change nothing in the hub's state."""

ALLOWED_WRITES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("PUT", re.compile(r"^/services/[^/]+/instances/[^/]+/heartbeat$")),
    ("POST", re.compile(r"^/telemetry$")),
)
"""Writes accepted in read-only mode: lease renewals and samples kept outside the backend."""

DEFAULT_RETRY_AFTER = 10


def is_allowed(method: str, path: str) -> bool:
    """Whether ``method path`` is served while the hub is read-only."""
    method = method.upper()
    if method in _SAFE_METHODS or path == MAINTENANCE_PATH:
        return True
    return any(m == method and p.match(path) for m, p in READS_BY_POST + ALLOWED_WRITES)


class MaintenanceMode:
    """Turns read-only mode on and off, and tells whether a request may run now.

    Args:
        backend: where the mode's key is written.
        view: this replica's view; the mode is read from it, never from the backend, so
            a check costs a dict lookup.
        drain_timeout: how long :meth:`enable` waits for this replica's in-flight writes.
        visibility_timeout: how long a change waits to be visible in this replica's view.
    """

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        *,
        drain_timeout: float = 10.0,
        visibility_timeout: float = 5.0,
    ) -> None:
        self.backend = backend
        self.view = view
        self.drain_timeout = drain_timeout
        self.visibility_timeout = visibility_timeout
        self.in_flight_writes = 0
        self._drained = asyncio.Event()
        self._drained.set()

    def current(self) -> dict[str, Any] | None:
        """The mode as this replica's view has it, or ``None`` when writable."""
        kv = self.view.get(MAINTENANCE_KEY)
        if kv is None:
            return None
        try:
            record = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            # An unreadable record still means someone asked for read-only: honour it.
            record = {"reason": "unreadable maintenance record"}
        return record if isinstance(record, dict) else {"reason": str(record)}

    def refusal(self, method: str, path: str) -> ReadOnly | None:
        """The error to answer instead of running ``method path``, or ``None``."""
        return None if is_allowed(method, path) else self.read_only_error()

    def read_only_error(self) -> ReadOnly | None:
        """The error for a write that read-only mode does not allow (``None``: not on)."""
        mode = self.current()
        if mode is None:
            return None
        reason = str(mode.get("reason") or "maintenance")
        return ReadOnly(
            f"the hub is read-only for maintenance ({reason}); writes are refused, "
            "reads and heartbeats still work",
            details={
                "reason": reason,
                "since": mode.get("since"),
                "retry_after": mode.get("retry_after", DEFAULT_RETRY_AFTER),
            },
        )

    def write_started(self) -> None:
        """A write passed the check on this replica (call :meth:`write_finished` after)."""
        self.in_flight_writes += 1
        self._drained.clear()

    def write_finished(self) -> None:
        """A write counted by :meth:`write_started` is done (answered or failed)."""
        self.in_flight_writes -= 1
        if self.in_flight_writes <= 0:
            self.in_flight_writes = 0
            self._drained.set()

    def describe(self) -> dict[str, Any]:
        """``GET /admin/maintenance``: the mode and this replica's in-flight writes."""
        mode = self.current()
        return {
            "read_only": mode is not None,
            **({"mode": mode} if mode is not None else {}),
            "replica": {
                "in_flight_writes": self.in_flight_writes,
                "view_revision": self.view.revision,
            },
        }

    async def enable(self, *, reason: str, retry_after: int, by: str | None) -> dict[str, Any]:
        """Turn read-only mode on for every replica; return once this replica refuses
        writes and the writes it had already accepted have finished (or the drain timed
        out: ``replica.drained`` says which)."""
        if not reason.strip():
            raise InvalidRequest("a reason is required", details={"field": "reason"})
        record = {
            "reason": reason,
            "retry_after": retry_after,
            "since": iso_utc(),
            "since_epoch": time.time(),
            "by": by,
        }
        revision = await self.backend.put(MAINTENANCE_KEY, orjson.dumps(record))
        await self.view.wait_for(revision, self.visibility_timeout)
        drained = True
        try:
            async with asyncio.timeout(self.drain_timeout):
                await self._drained.wait()
        except TimeoutError:
            drained = False
        answer = self.describe()
        answer["replica"]["drained"] = drained
        answer["revision"] = revision
        return answer

    async def disable(self) -> dict[str, Any]:
        """Turn read-only mode off (idempotent); return once this replica accepts writes."""
        previous = self.current()
        revision = await self.backend.delete(MAINTENANCE_KEY)
        if revision is not None:
            await self.view.wait_for(revision, self.visibility_timeout)
        answer = self.describe()
        if previous is not None and isinstance(previous.get("since_epoch"), int | float):
            answer["read_only_seconds"] = round(time.time() - previous["since_epoch"], 3)
        return answer


class ReadOnlyGuard:
    """ASGI middleware: answers ``503 read_only`` to writes while the mode is on.

    The check happens before the route runs, so a refused request writes nothing. Writes
    that pass are counted, so :meth:`MaintenanceMode.enable` can wait for them to finish.
    """

    def __init__(self, app: ASGIApp, *, mode: MaintenanceMode) -> None:
        self.app = app
        self.mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        if is_allowed(scope["method"], scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        refusal = self.mode.read_only_error()
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        # No await between the check and the count: enable() cannot miss this write.
        self.mode.write_started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.mode.write_finished()
