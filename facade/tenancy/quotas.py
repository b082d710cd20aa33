"""Tenant resource quotas: the spec's ``TenantResourceManager`` (DESIGN.md section 9).

Usage lives in the backend, one key per tenant and resource (``usage/<tenant>/<type>``),
so every replica enforces the same numbers. Allocation and release are compare-and-set
loops on that key: read it, compute the new count, write it only if nobody wrote in
between, else read again. Concurrent allocations from any number of replicas therefore
never exceed the limit and releases never take usage below zero.

``api_calls_per_hour`` counts in fixed hourly windows (UTC hour boundaries): the first
allocation of a new hour starts from zero. The other resources are gauges (held until
released). Limits come from the tenant's effective config (tier defaults, global config,
overrides). Usage at or above 80 % of a limit is an alert (``GET /alerts``, ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from adapters import Backend, KeyValue, Put
from facade.state.view import StateView
from facade.tenancy.config_store import ConfigService
from facade.tenancy.tenant_directory import TenantDirectory
from shared.backoff import jittered_delay
from shared.errors import (
    BackendTimeout,
    InvalidRequest,
    QuotaExceeded,
    QuotaReleaseExceedsUsage,
    RevisionConflict,
)
from shared.timestamps import iso_utc, utc_now

log = logging.getLogger("central_hub.quotas")

USAGE_PREFIX = "usage/"
ALERT_THRESHOLD = 0.8
WINDOW_SECONDS = 3600
# Waits between compare-and-swap rounds that lost to another replica: jittered, so the
# replicas spread out and one of them wins each round; a millisecond first, 20 ms at most.
CAS_RETRY_BASE = 0.001
CAS_RETRY_CAP = 0.02


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One quota-controlled resource and where its limit lives in the effective config."""

    name: str
    section: str
    limit_key: str
    windowed: bool
    unit: str


RESOURCES: dict[str, ResourceType] = {
    r.name: r
    for r in (
        ResourceType("api_calls_per_hour", "rate_limits", "api_calls_per_hour", True, "calls"),
        ResourceType(
            "websocket_connections", "rate_limits", "websocket_connections", False, "connections"
        ),
        ResourceType(
            "concurrent_requests", "resource_limits", "max_concurrent_requests", False, "requests"
        ),
        ResourceType("storage", "resource_limits", "max_data_storage_mb", False, "MB"),
    )
}


# Names callers may use for a resource besides its own (``x-resource-requirements``
# follows the spec's example ``{"storage_mb": 50}``).
RESOURCE_ALIASES = {"storage_mb": "storage"}


def usage_key(tenant_id: str, resource: str) -> str:
    """The key of one tenant's usage of one resource."""
    return f"{USAGE_PREFIX}{tenant_id}/{resource}"


def usage_prefix(tenant_id: str) -> str:
    """The prefix of all of a tenant's usage keys (removed with the tenant)."""
    return f"{USAGE_PREFIX}{tenant_id}/"


def window_start(now: float) -> int:
    """Start (epoch seconds) of the hourly window containing ``now``."""
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS


@dataclass(frozen=True, slots=True)
class Usage:
    """One usage record as stored."""

    used: int
    window_start: int | None
    alert_since: str | None

    @classmethod
    def from_kv(cls, kv: KeyValue | None) -> Usage:
        """Parse a stored record (absent: nothing used)."""
        if kv is None:
            return cls(0, None, None)
        data = orjson.loads(kv.value)
        return cls(int(data.get("used", 0)), data.get("window_start"), data.get("alert_since"))

    def current(self, resource: ResourceType, now: float) -> Usage:
        """This record as of ``now``: a windowed count from a past hour reads as zero."""
        if resource.windowed and self.window_start != window_start(now):
            return Usage(0, window_start(now), None)
        return self


def require_resource(name: str) -> ResourceType:
    """The resource type called ``name``; InvalidRequest listing the known ones."""
    resource = RESOURCES.get(RESOURCE_ALIASES.get(name, name))
    if resource is None:
        raise InvalidRequest(
            f"unknown resource type {name!r}",
            details={"resource": name, "allowed": sorted([*RESOURCES, *RESOURCE_ALIASES])},
        )
    return resource


def requested_resources(amounts: Mapping[str, int]) -> dict[ResourceType, int]:
    """Resolve the names (aliases included) of a several-resource request; a resource
    named twice (``storage`` and ``storage_mb``) is InvalidRequest, not a sum."""
    resolved: dict[ResourceType, int] = {}
    for name, amount in amounts.items():
        resource = require_resource(name)
        if resource in resolved:
            raise InvalidRequest(
                f"resource {resource.name!r} is named twice", details={"resource": name}
            )
        resolved[resource] = amount
    return resolved


class KeyedLocks:
    """One asyncio lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of ``key``."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class QuotaService:
    """Check, allocate and release tenant resources; usage and alerts from the view."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        tenants: TenantDirectory,
        config: ConfigService,
        *,
        visibility_timeout: float,
        cas_deadline: float = 10.0,
    ) -> None:
        self.backend = backend
        self.view = view
        self.tenants = tenants
        self.config = config
        self.visibility_timeout = visibility_timeout
        self.cas_deadline = cas_deadline
        self._locks = KeyedLocks()
        self._last_written: dict[str, KeyValue] = {}

    def limit(self, tenant_id: str, resource: ResourceType) -> int:
        """The tenant's limit for ``resource`` from its effective config."""
        config = self.config.effective(tenant_id)["config"]
        value = config.get(resource.section, {}).get(resource.limit_key)
        # Validation keeps limits non-negative integers; the tier defaults define all four.
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def _state(self, tenant_id: str, resource: ResourceType, now: float) -> dict[str, Any]:
        usage = Usage.from_kv(self.view.get(usage_key(tenant_id, resource.name)))
        usage = usage.current(resource, now)
        limit = self.limit(tenant_id, resource)
        state: dict[str, Any] = {
            "resource": resource.name,
            "unit": resource.unit,
            "used": usage.used,
            "limit": limit,
            "remaining": max(0, limit - usage.used),
            "utilization": _utilization(usage.used, limit),
            "alert": _alerting(usage.used, limit),
        }
        if resource.windowed:
            start = window_start(now)
            state["window_start"] = iso_utc(start, timespec="seconds")
            state["window_end"] = iso_utc(start + WINDOW_SECONDS, timespec="seconds")
        return state

    def usage(self, tenant_id: str) -> dict[str, Any]:
        """``GET /tenants/{id}/usage``: every resource with used, limit and utilization."""
        tenant = self.tenants.require(tenant_id)
        now = time.time()
        resources = {name: self._state(tenant_id, r, now) for name, r in RESOURCES.items()}
        return {
            "tenant_id": tenant_id,
            "subscription_tier": tenant.subscription_tier,
            "resources": resources,
            "alerts": [s["resource"] for s in resources.values() if s["alert"]],
            "stale": self.view.stale,
        }

    def check(self, tenant_id: str, resource_name: str, amount: int) -> dict[str, Any]:
        """Whether ``amount`` more would fit now (advisory; allocate is what reserves)."""
        self.tenants.require(tenant_id)
        resource = require_resource(resource_name)
        state = self._state(tenant_id, resource, time.time())
        return {
            "tenant_id": tenant_id,
            "requested": amount,
            "allowed": state["used"] + amount <= state["limit"],
            **state,
        }

    async def allocate(self, tenant_id: str, resource_name: str, amount: int) -> dict[str, Any]:
        """Reserve ``amount``; QuotaExceeded (429) when it would pass the limit."""
        return await self._change(tenant_id, resource_name, amount)

    def check_all(self, tenant_id: str, amounts: Mapping[str, int]) -> dict[str, Any]:
        """Whether every amount would fit now (advisory, reserves nothing): per resource
        used, limit and ``fits``, and ``exceeded`` naming those that would not fit."""
        self.tenants.require(tenant_id)
        now = time.time()
        states: dict[str, Any] = {}
        for resource, amount in requested_resources(amounts).items():
            state = self._state(tenant_id, resource, now)
            fits = state["used"] + amount <= state["limit"]
            states[resource.name] = {
                "requested": amount,
                "fits": fits,
                **{k: state[k] for k in ("unit", "used", "limit", "remaining")},
            }
        exceeded = sorted(name for name, state in states.items() if not state["fits"])
        return {
            "tenant_id": tenant_id,
            "fits": not exceeded,
            "exceeded": exceeded,
            "resources": states,
        }

    async def allocate_all(self, tenant_id: str, amounts: Mapping[str, int]) -> dict[str, Any]:
        """Reserve several resources at once: all of them or none (one backend
        transaction over their usage keys, compare-and-set on each). QuotaExceeded (429)
        naming every resource that would not fit, with the same details as
        :meth:`allocate` for the first of them."""
        self.tenants.require(tenant_id)
        wanted = {r: a for r, a in requested_resources(amounts).items() if a > 0}
        if not wanted:
            return {"tenant_id": tenant_id, "allocated": {}}
        ordered = sorted(wanted.items(), key=lambda item: item[0].name)
        async with contextlib.AsyncExitStack() as stack:
            # Locks taken in name order, so two requests over the same keys cannot deadlock.
            for resource, _ in ordered:
                await stack.enter_async_context(
                    self._locks.hold(usage_key(tenant_id, resource.name))
                )
            result, revision = await self._cas_all(tenant_id, ordered)
        if not await self.view.wait_for(revision, self.visibility_timeout):
            log.warning("usage write at revision %d not yet visible here", revision)
        return result

    async def _cas_all(
        self, tenant_id: str, ordered: list[tuple[ResourceType, int]]
    ) -> tuple[dict[str, Any], int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cas_deadline
        keys = [usage_key(tenant_id, r.name) for r, _ in ordered]
        kvs = [self._newest_known(key) for key in keys]
        fresh = False
        attempt = 0
        while True:
            now = time.time()
            usages = [
                Usage.from_kv(kv).current(r, now) for kv, (r, _) in zip(kvs, ordered, strict=True)
            ]
            limits = [self.limit(tenant_id, r) for r, _ in ordered]
            over = [
                i
                for i, (u, lim, (_, a)) in enumerate(zip(usages, limits, ordered, strict=True))
                if u.used + a > lim
            ]
            if over:
                if not fresh:
                    kvs, fresh = [await self.backend.get(key) for key in keys], True
                    continue
                first = over[0]
                refusal = self._refusal(
                    tenant_id,
                    ordered[first][0],
                    usages[first].used,
                    limits[first],
                    ordered[first][1],
                    now,
                )
                refusal.details["exceeded"] = [ordered[i][0].name for i in over]
                raise refusal
            values = []
            for usage, limit, (resource, amount) in zip(usages, limits, ordered, strict=True):
                new_used = usage.used + amount
                alerting = _alerting(new_used, limit)
                record = {
                    "used": new_used,
                    "window_start": window_start(now) if resource.windowed else None,
                    "alert_since": (usage.alert_since or utc_now()) if alerting else None,
                    "updated_at": utc_now(),
                }
                values.append(orjson.dumps(record))
            puts = [
                Put(key, value, if_revision=kv.mod_revision if kv else 0)
                for key, value, kv in zip(keys, values, kvs, strict=True)
            ]
            try:
                revision = await self.backend.put_all(puts)
                break
            except RevisionConflict:
                attempt += 1
                await _retry_or_give_up(attempt, deadline, f"resources of tenant {tenant_id!r} are")
                kvs, fresh = [await self.backend.get(key) for key in keys], True
        allocated: dict[str, Any] = {}
        for key, value, kv, usage, limit, (resource, amount) in zip(
            keys, values, kvs, usages, limits, ordered, strict=True
        ):
            self._last_written[key] = KeyValue(
                key, value, kv.create_revision if kv else revision, revision
            )
            new_used = usage.used + amount
            allocated[resource.name] = {
                "allocated": amount,
                "unit": resource.unit,
                "used": new_used,
                "limit": limit,
                "remaining": max(0, limit - new_used),
                "alert": _alerting(new_used, limit),
            }
        return {"tenant_id": tenant_id, "allocated": allocated}, revision

    async def release(self, tenant_id: str, resource_name: str, amount: int) -> dict[str, Any]:
        """Give back ``amount``; QuotaReleaseExceedsUsage (409) if more than is held."""
        return await self._change(tenant_id, resource_name, -amount)

    async def _change(self, tenant_id: str, resource_name: str, delta: int) -> dict[str, Any]:
        self.tenants.require(tenant_id)
        resource = require_resource(resource_name)
        key = usage_key(tenant_id, resource.name)
        # One change per key at a time in this replica: the backend CAS then only races the
        # other replicas (a handful), not every concurrent request (hundreds), which
        # would mostly fail and retry.
        async with self._locks.hold(key):
            result, revision = await self._cas(tenant_id, resource, key, delta)
        if not await self.view.wait_for(revision, self.visibility_timeout):
            log.warning("usage write at revision %d not yet visible here", revision)
        return result

    async def _cas(
        self, tenant_id: str, resource: ResourceType, key: str, delta: int
    ) -> tuple[dict[str, Any], int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cas_deadline
        # First guess from memory (the view, or this replica's own last write, whichever
        # is newer); the CAS tells us if it is old, and refusals are confirmed fresh.
        kv = self._newest_known(key)
        fresh = False
        attempt = 0
        while True:
            now = time.time()
            usage = Usage.from_kv(kv).current(resource, now)
            limit = self.limit(tenant_id, resource)
            new_used = usage.used + delta
            if (delta > 0 and new_used > limit) or new_used < 0:
                if not fresh:
                    kv, fresh = await self.backend.get(key), True
                    continue
                raise self._refusal(tenant_id, resource, usage.used, limit, delta, now)
            alerting = _alerting(new_used, limit)
            record = {
                "used": new_used,
                "window_start": window_start(now) if resource.windowed else None,
                "alert_since": (usage.alert_since or utc_now()) if alerting else None,
                "updated_at": utc_now(),
            }
            value = orjson.dumps(record)
            try:
                revision = await self.backend.put(
                    key, value, if_revision=kv.mod_revision if kv else 0
                )
                break
            except RevisionConflict:
                attempt += 1
                await _retry_or_give_up(
                    attempt, deadline, f"{resource.name} of tenant {tenant_id!r} is"
                )
                kv, fresh = await self.backend.get(key), True
        self._last_written[key] = KeyValue(
            key, value, kv.create_revision if kv else revision, revision
        )
        if alerting and usage.alert_since is None:
            log.warning(
                "tenant %s reached %d of %d %s of %s (alert threshold %d%%)",
                tenant_id,
                new_used,
                limit,
                resource.unit,
                resource.name,
                round(ALERT_THRESHOLD * 100),
            )
        result = {
            "tenant_id": tenant_id,
            "resource": resource.name,
            "unit": resource.unit,
            "allocated" if delta > 0 else "released": abs(delta),
            "used": new_used,
            "limit": limit,
            "remaining": max(0, limit - new_used),
            "utilization": _utilization(new_used, limit),
            "alert": alerting,
        }
        return result, revision

    def _newest_known(self, key: str) -> KeyValue | None:
        seen = self.view.get(key)
        mine = self._last_written.get(key)
        if mine is None or (seen is not None and seen.mod_revision >= mine.mod_revision):
            self._last_written.pop(key, None)  # the view has caught up; forget our copy
            return seen
        return mine

    @staticmethod
    def _refusal(
        tenant_id: str, resource: ResourceType, used: int, limit: int, delta: int, now: float
    ) -> QuotaExceeded | QuotaReleaseExceedsUsage:
        if delta < 0:
            return QuotaReleaseExceedsUsage(
                f"cannot release {-delta} {resource.unit} of {resource.name}: "
                f"tenant {tenant_id!r} holds {used}",
                details={
                    "tenant_id": tenant_id,
                    "resource": resource.name,
                    "current_usage": used,
                    "requested": -delta,
                },
            )
        details: dict[str, Any] = {
            "tenant_id": tenant_id,
            "resource": resource.name,
            "limit": limit,
            "current_usage": used,
            "requested": delta,
            "unit": resource.unit,
        }
        if resource.windowed:
            details["retry_after"] = window_start(now) + WINDOW_SECONDS - now
        return QuotaExceeded(
            f"{resource.name} quota exceeded for tenant {tenant_id!r}: "
            f"{used} of {limit} in use, {delta} requested",
            details=details,
        )

    def samples(self) -> Iterator[tuple[str, ResourceType, Usage, int]]:
        """``(tenant, resource, usage, limit)`` for every stored usage record."""
        now = time.time()
        for kv in self.view.items(USAGE_PREFIX):
            tenant_id, _, resource_name = kv.key[len(USAGE_PREFIX) :].partition("/")
            resource = RESOURCES.get(resource_name)
            if resource is None or self.tenants.get(tenant_id) is None:
                continue
            usage = Usage.from_kv(kv).current(resource, now)
            yield tenant_id, resource, usage, self.limit(tenant_id, resource)

    def alerts(self) -> list[dict[str, Any]]:
        """Every tenant resource at or above 80 % of its limit, most utilized first."""
        found: list[dict[str, Any]] = []
        for tenant_id, resource, usage, limit in self.samples():
            if not _alerting(usage.used, limit):
                continue
            utilization = _utilization(usage.used, limit)
            found.append(
                {
                    "type": "tenant_resource_limit",
                    "severity": "critical" if usage.used >= limit else "warning",
                    "tenant_id": tenant_id,
                    "resource": resource.name,
                    "used": usage.used,
                    "limit": limit,
                    "utilization": utilization,
                    "threshold": ALERT_THRESHOLD,
                    "since": usage.alert_since,
                    "message": f"tenant {tenant_id!r} uses {usage.used} of {limit} "
                    f"{resource.unit} of {resource.name} ({utilization:.0%})",
                }
            )
        found.sort(key=lambda a: (-a["utilization"], a["tenant_id"], a["resource"]))
        return found


def _utilization(used: int, limit: int) -> float:
    if limit <= 0:
        return 1.0 if used > 0 else 0.0
    return round(used / limit, 4)


def _alerting(used: int, limit: int) -> bool:
    if limit <= 0:
        return used > 0
    return used >= ALERT_THRESHOLD * limit


class QuotaMetrics(Collector):
    """Prometheus gauges computed from the view at scrape time (no per-write bookkeeping)."""

    def __init__(self, quotas: QuotaService) -> None:
        self.quotas = quotas

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Per-tenant usage, limits and utilization, and the number of active alerts."""
        used = GaugeMetricFamily(
            "hub_tenant_resource_used", "Tenant resource in use", labels=["tenant_id", "resource"]
        )
        limit = GaugeMetricFamily(
            "hub_tenant_resource_limit", "Tenant resource limit", labels=["tenant_id", "resource"]
        )
        ratio = GaugeMetricFamily(
            "hub_tenant_resource_utilization_ratio",
            "Tenant resource used / limit",
            labels=["tenant_id", "resource"],
        )
        alerts = GaugeMetricFamily(
            "hub_tenant_quota_alerts",
            "Tenant resources at or above 80% of their limit",
            labels=["severity"],
        )
        counts = {"warning": 0, "critical": 0}
        for tenant_id, resource, usage, cap in self.quotas.samples():
            in_use = usage.used
            used.add_metric([tenant_id, resource.name], in_use)
            limit.add_metric([tenant_id, resource.name], cap)
            ratio.add_metric([tenant_id, resource.name], _utilization(in_use, cap))
            if _alerting(in_use, cap):
                counts["critical" if in_use >= cap else "warning"] += 1
        for severity, count in counts.items():
            alerts.add_metric([severity], count)
        yield from (used, limit, ratio, alerts)


async def _retry_or_give_up(attempt: int, deadline: float, subject: str) -> None:
    """After a lost compare-and-set: wait a jittered moment, or give up past ``deadline``
    (``subject`` names what was contended, e.g. "storage of tenant 'acme' is")."""
    if asyncio.get_running_loop().time() > deadline:
        raise BackendTimeout(
            f"{subject} too contended; try again",
            details={"retry_after": 1, "attempts": attempt},
        )
    await asyncio.sleep(jittered_delay(attempt - 1, CAS_RETRY_BASE, CAS_RETRY_CAP))
