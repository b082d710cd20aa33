"""The audit log: every write through the API, who made it and how it ended.

Records are kept by the backend outside the mirrored keyspace (the view never sees them;
only ``GET /audit`` reads them): the embedded backend in a table of its own, etcd and
Consul under a prefix beside the hub's. A request only queues its record; one writer
task stores whatever has queued as one batch (one backend write), so neither an accepted
nor a refused request waits for the audit store. The queue is bounded: when the store is
unreachable for long, the newest records are dropped and counted rather than letting
memory grow. Retention deletes records older than ``retention_days`` and the oldest
beyond ``max_records``. Ids start with a nanosecond timestamp, so they sort in time. The
token id is recorded, never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import AuditQuery, Backend
from facade.access.tokens import Permission
from facade.tasks import cancel_and_wait
from shared.backoff import Backoff
from shared.errors import HubError
from shared.tenancy import HEADER_COMPANY_ID, HEADER_CORRELATION_ID, HEADER_TENANT_ID
from shared.timestamps import utc_now

log = logging.getLogger("central_hub.audit")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DAY_NS = 86_400 * 10**9


def audit_id(now_ns: int | None = None) -> str:
    """A new record id: sorts by time, unique across replicas."""
    return f"{time.time_ns() if now_ns is None else now_ns:020d}-{secrets.token_hex(3)}"


class AuditLog:
    """Queues, batches, stores, trims and queries audit records."""

    def __init__(
        self,
        backend: Backend,
        *,
        retention_days: float = 30,
        max_records: int = 1_000_000,
        max_batch: int = 500,
        max_pending: int = 20_000,
        trim_interval: float = 60.0,
        flush_timeout: float = 5.0,
    ) -> None:
        self.backend = backend
        self.retention_days = retention_days
        self.max_records = max_records
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.trim_interval = trim_interval
        self.flush_timeout = flush_timeout
        self._pending: deque[dict[str, Any]] = deque()
        self._queued = 0
        """Records ever queued (a flush waits for the writer to reach this count)."""
        self._done = 0
        """Records the writer has finished with (stored or lost)."""
        self.stored = 0
        self.dropped = 0
        self.lost = 0
        self.batches = 0
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_ns = 0

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and the retention task."""
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="audit-writer"),
            asyncio.create_task(self._trim_forever(), name="audit-retention"),
        ]

    async def stop(self) -> None:
        """Store what is queued (up to ``flush_timeout``), then stop."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.flush_timeout):
                await self.flush()
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        if self._pending:
            log.error("%d audit records not stored at shutdown", len(self._pending))
            self.lost += len(self._pending)
            self._pending.clear()

    # -- writing --------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        """Queue one record (never waits, never raises); it is stored with the next batch."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("audit queue full: %d records dropped so far", self.dropped)
            return
        # Strictly increasing here, so records of one replica keep their order.
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        self._pending.append(entry | {"id": audit_id(self._last_ns)})
        self._queued += 1
        self._wakeup.set()

    async def flush(self) -> None:
        """Wait until every record queued before this call has been stored (or lost)."""
        target = self._queued
        while self._done < target and self._tasks:
            self._progress.clear()
            await self._progress.wait()

    async def _write_forever(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = [self._pending[i] for i in range(min(self.max_batch, len(self._pending)))]
            try:
                await self.backend.append_audit(batch)
            except (HubError, OSError) as exc:
                log.warning("audit batch of %d not stored yet (retrying): %s", len(batch), exc)
                await asyncio.sleep(backoff.next())
                continue
            except Exception:  # a bug, not an outage: retrying would never end
                log.exception("audit batch of %d lost", len(batch))
                self.lost += len(batch)
            else:
                self.stored += len(batch)
                self.batches += 1
            backoff.reset()
            for _ in batch:
                self._pending.popleft()
            self._done += len(batch)
            self._progress.set()

    # -- retention ------------------------------------------------------------------

    async def trim(self, now_ns: int | None = None) -> int:
        """Apply the retention now; return how many records were deleted."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        cutoff = f"{now_ns - int(self.retention_days * DAY_NS):020d}"
        return await self.backend.trim_audit(older_than=cutoff, max_records=self.max_records)

    async def _trim_forever(self) -> None:
        while True:
            try:
                deleted = await self.trim()
                if deleted:
                    log.info("audit retention deleted %d records", deleted)
            except (HubError, OSError) as exc:
                log.warning("audit retention failed (next round retries): %s", exc)
            await asyncio.sleep(self.trim_interval)

    # -- reading --------------------------------------------------------------------

    async def query(
        self,
        *,
        tenant_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Newest first, filtered; ``before`` is the ``next`` cursor of a previous page.

        Records this replica has queued are stored first (briefly waited for), so a
        caller reads its own writes.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.flush_timeout):
                await self.flush()
        entries = await self.backend.query_audit(
            AuditQuery(
                tenant_id=tenant_id, token_id=actor, action=action, before=before, limit=limit + 1
            )
        )
        more = len(entries) > limit
        entries = entries[:limit]
        return {"entries": entries, "next": entries[-1]["id"] if more else None}

    def describe(self) -> dict[str, int]:
        """Counters for metrics."""
        return {
            "pending": len(self._pending),
            "stored": self.stored,
            "batches": self.batches,
            "dropped": self.dropped,
            "lost": self.lost,
        }


class AuditMetrics(Collector):
    """``hub_audit_*``: the queue's depth and what became of the records."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        """Pending records, records stored, batches written, records dropped or lost."""
        figures = self.audit.describe()
        yield GaugeMetricFamily(
            "hub_audit_pending", "Audit records queued, not stored yet", value=figures["pending"]
        )
        records = CounterMetricFamily(
            "hub_audit_records", "Audit records by outcome", labels=["outcome"]
        )
        for outcome in ("stored", "dropped", "lost"):
            records.add_metric([outcome], figures[outcome])
        yield records
        yield CounterMetricFamily(
            "hub_audit_batches", "Audit batches written", value=figures["batches"]
        )


class AuditMiddleware:
    """Records every write request after it has been answered (success or refusal)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope["method"] not in WRITE_METHODS
            # discovery's ?reserve=true allocates quota: a write through a GET
            and b"reserve=" not in scope.get("query_string", b"")
        ):
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
                self._record(scope, state, status)

    @staticmethod
    def _record(scope: Scope, state: dict[str, Any], status: int) -> None:
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
        hub.audit.record(
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
