"""Error groups reported by services' ErrorDNA: ``POST /errors`` and ``GET /errors``.

A service's :class:`shared.error_dna.ErrorDNA` fingerprints its failures (normalised
message, exception type, top frames) and reports each new group here. The hub keeps one
record per (service, fingerprint) in the backend (``errors/<service>/<fingerprint>``), so
every replica lists the same groups: how often each was reported, first and last seen,
and per tenant. Reports update the record by compare-and-set, so concurrent reports from
many instances are all counted. Each service keeps at most ``max_groups_per_service``
groups; a new group beyond that replaces the one seen least recently.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from adapters import Backend, KeyValue
from facade.models import TENANT_ID_PATTERN, ServiceName
from facade.state.view import StateView
from shared.backoff import jittered_delay
from shared.errors import BackendTimeout, RevisionConflict
from shared.timestamps import utc_now

log = logging.getLogger("central_hub.errors")

ERRORS_PREFIX = "errors/"
_TENANT_ID = re.compile(TENANT_ID_PATTERN)
# Tenants remembered per group: enough for "which tenants see this", bounded per record.
MAX_TENANTS_PER_GROUP = 200
# Waits between compare-and-swap rounds that lost to another replica: jittered, so the
# replicas spread out and one of them wins each round; a millisecond first, 20 ms at most.
CAS_RETRY_BASE = 0.001
CAS_RETRY_CAP = 0.02

Line = Annotated[str, StringConstraints(max_length=500)]
Frame = Annotated[str, StringConstraints(max_length=300)]


class ErrorReport(BaseModel):
    """``POST /errors``: one ErrorDNA analysis (``ErrorAnalysis.to_dict()``)."""

    model_config = ConfigDict(extra="forbid")

    service_name: ServiceName
    fingerprint: str = Field(pattern=r"^[0-9a-f]{8,64}$", description="ErrorDNA group key.")
    error_type: str = Field(max_length=200)
    message: str = Field("", max_length=4000, description="The occurrence's own message.")
    normalized_message: str = Field(max_length=4000)
    category: str = Field(pattern=r"^[a-z_]{1,64}$")
    severity: Literal["low", "medium", "high", "critical"]
    pattern: str | None = Field(None, max_length=64)
    suggested_actions: list[Line] = Field(default_factory=list, max_length=20)
    retryable: bool = False
    frames: list[Frame] = Field(default_factory=list, max_length=10)
    context: dict[str, Any] = Field(
        default_factory=dict, max_length=50, description="tenant_id here labels the tenant."
    )
    occurrences: int = Field(1, ge=1, description="The reporter's own count (informational).")
    first_seen: str | None = Field(None, max_length=40)
    last_seen: str | None = Field(None, max_length=40)


def group_key(service: str, fingerprint: str) -> str:
    """Backend key of one group."""
    return f"{ERRORS_PREFIX}{service}/{fingerprint}"


def _tenant_of(report: ErrorReport) -> str | None:
    tenant = report.context.get("tenant_id")
    return tenant if isinstance(tenant, str) and _TENANT_ID.match(tenant) else None


class ErrorGroupService:
    """Counts reported error groups in the backend; lists the top ones from the view."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        *,
        visibility_timeout: float,
        max_groups_per_service: int = 1000,
        cas_deadline: float = 10.0,
    ) -> None:
        self.backend = backend
        self.view = view
        self.visibility_timeout = visibility_timeout
        self.max_groups_per_service = max_groups_per_service
        self.cas_deadline = cas_deadline

    async def report(self, report: ErrorReport) -> dict[str, Any]:
        """Count one report of a group (creating the group on its first report)."""
        key = group_key(report.service_name, report.fingerprint)
        tenant = _tenant_of(report)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cas_deadline
        kv = self.view.get(key)
        if kv is None:
            await self._make_room(report.service_name)
        attempt = 0
        while True:
            record = self._updated(kv, report, tenant)
            try:
                revision = await self.backend.put(
                    key, orjson.dumps(record), if_revision=kv.mod_revision if kv else 0
                )
                break
            except RevisionConflict:
                attempt += 1
                if loop.time() > deadline:
                    raise BackendTimeout(
                        "error group too contended; try again",
                        details={"retry_after": 1, "attempts": attempt},
                    ) from None
                await asyncio.sleep(jittered_delay(attempt - 1, CAS_RETRY_BASE, CAS_RETRY_CAP))
                kv = await self.backend.get(key)
        if not await self.view.wait_for(revision, self.visibility_timeout):
            log.warning("error report at revision %d not yet visible here", revision)
        return {"created": kv is None, **self._public(record)}

    @staticmethod
    def _updated(kv: KeyValue | None, report: ErrorReport, tenant: str | None) -> dict[str, Any]:
        now = utc_now()
        if kv is None:
            record: dict[str, Any] = {
                "service_name": report.service_name,
                "fingerprint": report.fingerprint,
                "error_type": report.error_type,
                "normalized_message": report.normalized_message,
                "category": report.category,
                "severity": report.severity,
                "pattern": report.pattern,
                "suggested_actions": report.suggested_actions,
                "sample_message": report.message[:1000],
                "frames": report.frames,
                "count": 0,
                "first_seen": now,
                "tenants": {},
            }
        else:
            record = orjson.loads(kv.value)
        record["count"] += 1
        record["last_seen"] = now
        tenants: dict[str, int] = record["tenants"]
        if tenant is not None and (tenant in tenants or len(tenants) < MAX_TENANTS_PER_GROUP):
            tenants[tenant] = tenants.get(tenant, 0) + 1
        return record

    async def _make_room(self, service: str) -> None:
        """Before a new group: drop the least recently seen ones beyond the cap."""
        groups = [
            (orjson.loads(kv.value).get("last_seen", ""), kv.key)
            for kv in self.view.items(f"{ERRORS_PREFIX}{service}/")
        ]
        excess = len(groups) - self.max_groups_per_service + 1
        for _, key in sorted(groups)[: max(0, excess)]:
            await self.backend.delete(key)

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "tenants": dict(sorted(record["tenants"].items()))}

    def top(
        self,
        *,
        service: str | None = None,
        tenant_id: str | None = None,
        category: str | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        """The most reported groups, most frequent first (then most recent).

        With ``tenant_id`` only groups that tenant saw, counted for that tenant.
        """
        prefix = f"{ERRORS_PREFIX}{service}/" if service else ERRORS_PREFIX
        groups = []
        for kv in self.view.items(prefix):
            record = orjson.loads(kv.value)
            if category is not None and record["category"] != category:
                continue
            if tenant_id is not None:
                tenant_count = record["tenants"].get(tenant_id)
                if not tenant_count:
                    continue
                record = {**record, "tenant_count": tenant_count}
            groups.append(record)
        count_key = "tenant_count" if tenant_id is not None else "count"
        groups.sort(key=lambda r: (r[count_key], r["last_seen"]), reverse=True)
        return {
            "groups": [self._public(r) for r in groups[:limit]],
            "total_groups": len(groups),
            "service_name": service,
            "tenant_id": tenant_id,
            "stale": self.view.stale,
        }
