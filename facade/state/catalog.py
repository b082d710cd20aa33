"""The in-memory service catalog, kept by the view from ``catalog/`` and ``health/`` keys.

Everything the discovery hot path needs is precomputed here when the catalog changes
(candidate endpoints, public JSON), so a discovery request does a dict lookup and one
endpoint selection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import orjson

from adapters import EventType, KeyValue, WatchEvent
from adapters.base import CATALOG_PREFIX, HEALTH_PREFIX, url_host
from facade.state.check_spec import CheckSpec
from facade.state.confidence import confidence_score
from shared.tenancy import minimum_tier

log = logging.getLogger("central_hub.catalog")

STATUSES = ("healthy", "degraded", "critical")

ROUTING_PREFIX = "routing/"
"""A service's canary routing: ``routing/<service>/canary`` (written by a deployment)."""

DRAINING_PREFIX = "draining/"
"""Instances a deployment is replacing: ``draining/<service>/<instance>`` holds
``{"desired_version", "deployment_id"}``. Discovery never offers a draining instance."""


def draining_key(service: str, instance_id: str) -> str:
    """Key of an instance's draining mark."""
    return f"{DRAINING_PREFIX}{service}/{instance_id}"


def health_key(service: str, instance_id: str) -> str:
    """Key of an instance's latest health result."""
    return f"{HEALTH_PREFIX}{service}/{instance_id}"


def endpoint_url(protocol: str, host: str, port: int) -> str:
    """The URL callers use to reach an instance directly."""
    return f"{protocol}://{url_host(host)}:{port}"


@dataclass(frozen=True, slots=True)
class Instance:
    """One registered instance, as stored in its catalog record."""

    instance_id: str
    service_name: str
    host: str
    port: int
    protocol: str = "http"
    health_endpoint: str = "/health"
    tenant_capable: bool = True
    subscription_requirements: tuple[str, ...] | None = None
    resource_tier: str = "basic"
    weight: int = 1
    version: str | None = None
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    ttl: int | None = None
    registered_at: str = ""
    load: float | None = None
    lease: int | None = None
    check: CheckSpec | None = None
    """How the instance is checked; ``None`` means the defaults for its protocol and TTL."""
    revision: int = 0
    backup: dict[str, Any] | None = None
    """Its system-wide backup declaration (endpoint, depends_on, timeout_seconds), if any."""

    @property
    def check_spec(self) -> CheckSpec:
        """The instance's check with defaults resolved."""
        if self.check is not None:
            return self.check
        return CheckSpec.resolve(None, protocol=self.protocol, ttl=self.ttl)

    @property
    def url(self) -> str:
        """Where callers reach this instance."""
        return endpoint_url(self.protocol, self.host, self.port)

    def to_record(self) -> dict[str, Any]:
        """The stored JSON form (the backend's catalog record)."""
        return {
            "instance_id": self.instance_id,
            "service_name": self.service_name,
            "host": self.host,
            "port": self.port,
            "protocol": self.protocol,
            "health_endpoint": self.health_endpoint,
            "tenant_capable": self.tenant_capable,
            "subscription_requirements": (
                list(self.subscription_requirements) if self.subscription_requirements else None
            ),
            "resource_tier": self.resource_tier,
            "weight": self.weight,
            "version": self.version,
            "tags": list(self.tags),
            "meta": dict(self.meta),
            "ttl": self.ttl,
            "registered_at": self.registered_at,
            "load": self.load,
            "lease": self.lease,
            "check": self.check.to_record() if self.check is not None else None,
        } | ({"backup": dict(self.backup)} if self.backup is not None else {})

    @classmethod
    def from_record(cls, data: dict[str, Any], *, revision: int = 0) -> Instance:
        """Parse a stored record; missing optional fields take safe defaults."""
        reqs = data.get("subscription_requirements")
        protocol = str(data.get("protocol") or "http")
        ttl = data.get("ttl")
        check = data.get("check")
        return cls(
            instance_id=str(data["instance_id"]),
            service_name=str(data["service_name"]),
            host=str(data["host"]),
            port=int(data["port"]),
            protocol=protocol,
            health_endpoint=str(data.get("health_endpoint") or "/health"),
            tenant_capable=bool(data.get("tenant_capable", True)),
            subscription_requirements=tuple(reqs) if reqs else None,
            resource_tier=str(data.get("resource_tier") or "basic"),
            weight=int(data.get("weight") or 1),
            version=data.get("version"),
            tags=tuple(data.get("tags") or ()),
            meta=dict(data.get("meta") or {}),
            ttl=ttl,
            registered_at=str(data.get("registered_at") or ""),
            load=data.get("load"),
            lease=data.get("lease"),
            check=(
                CheckSpec.resolve(check, protocol=protocol, ttl=ttl)
                if isinstance(check, dict)
                else None
            ),
            revision=revision,
            backup=dict(data["backup"]) if isinstance(data.get("backup"), dict) else None,
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """An endpoint discovery may recommend, with what selection needs."""

    instance: Instance
    status: str
    confidence: float
    latency_ms: float | None = None
    """EWMA latency of passing probes (``None`` before the first measurement)."""
    load: float | None = None
    """Load the instance last reported with its heartbeat, 0-1."""

    @property
    def url(self) -> str:
        """The instance's URL."""
        return self.instance.url

    @property
    def weight(self) -> int:
        """The instance's relative share of traffic."""
        return self.instance.weight


class CandidateSet:
    """A service's recommendable endpoints plus the tables selection needs.

    Built once per catalog or health change (never per request) and immutable after:
    the cumulative weights let a weighted pick be one ``bisect``.
    """

    __slots__ = ("_least_loaded", "candidates", "cumulative", "degraded_fallback", "total_weight")

    def __init__(self, candidates: list[Candidate], degraded_fallback: bool) -> None:
        self.candidates: tuple[Candidate, ...] = tuple(candidates)
        self.degraded_fallback = degraded_fallback
        self.cumulative: tuple[int, ...] = tuple(accumulate(c.weight for c in candidates))
        self.total_weight = self.cumulative[-1] if self.cumulative else 0
        self._least_loaded: CandidateSet | None = None

    def __len__(self) -> int:
        return len(self.candidates)

    def __bool__(self) -> bool:
        return bool(self.candidates)

    def least_loaded(self, unknown_load: float, tolerance: float) -> CandidateSet:
        """The candidates whose load is within ``tolerance`` of the lowest (cached)."""
        if self._least_loaded is None:
            loads = [unknown_load if c.load is None else c.load for c in self.candidates]
            lowest = min(loads, default=0.0)
            self._least_loaded = CandidateSet(
                [
                    c
                    for c, load in zip(self.candidates, loads, strict=True)
                    if load <= lowest + tolerance
                ],
                self.degraded_fallback,
            )
        return self._least_loaded


class ServiceState:
    """One service: its instances, their health, and precomputed answers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.instances: dict[str, Instance] = {}
        self.health: dict[str, dict[str, Any]] = {}
        self.draining: dict[str, dict[str, Any]] = {}
        self.routing: dict[str, Any] | None = None
        """A canary in progress: ``{"version", "tenants", "weight_percent"}``."""
        self._routed: dict[bool, tuple[CandidateSet, dict[str, Any]]] = {}
        """Draining marks by instance id (a deployment is replacing those instances)."""
        self._public: dict[str, Any] | None = None
        self._candidates: CandidateSet | None = None
        self._discovery: dict[str, Any] | None = None
        self._health_summary: dict[str, Any] | None = None
        self._newest_instance: tuple[Instance | None] | None = None

    def invalidate(self) -> None:
        """Drop precomputed answers after a change."""
        self._public = None
        self._candidates = None
        self._routed = {}
        self._discovery = None
        self._health_summary = None
        self._newest_instance = None

    def _newest(self) -> Instance | None:
        # Read by every tier check on the discovery path: found once per catalog change.
        if self._newest_instance is None:
            newest = max(self.instances.values(), key=lambda i: i.revision, default=None)
            self._newest_instance = (newest,)
        return self._newest_instance[0]

    @property
    def subscription_requirements(self) -> tuple[str, ...] | None:
        """Tier requirements, from the most recently registered instance."""
        newest = self._newest()
        return newest.subscription_requirements if newest else None

    def status_of(self, instance_id: str) -> str:
        """An instance's health status; registered instances count as healthy until checked."""
        status = self.health.get(instance_id, {}).get("status", "healthy")
        return status if status in STATUSES else "critical"

    def _candidate(self, inst: Instance, status: str) -> Candidate:
        record = self.health.get(inst.instance_id, {})
        latency = _number(record.get("latency"))
        return Candidate(
            inst,
            status,
            confidence_score(
                success_rate=_number(record.get("success_rate")),
                latency_ms=latency,
                latency_trend=_number(record.get("latency_trend")),
                degraded_latency_ms=inst.check_spec.degraded_latency_ms,
            ),
            latency_ms=latency,
            load=inst.load,
        )

    def _candidate_set(self, keep: Callable[[Instance], bool] | None = None) -> CandidateSet:
        by_status: dict[str, list[Candidate]] = {"healthy": [], "degraded": []}
        for inst in sorted(self.instances.values(), key=lambda i: i.instance_id):
            if keep is not None and not keep(inst):
                continue
            status = self.status_of(inst.instance_id)
            # A draining instance is about to stop: never offered, from the mark on.
            if status in by_status and inst.instance_id not in self.draining:
                by_status[status].append(self._candidate(inst, status))
        if by_status["healthy"]:
            return CandidateSet(by_status["healthy"], False)
        return CandidateSet(by_status["degraded"], bool(by_status["degraded"]))

    def candidates(self) -> CandidateSet:
        """Healthy endpoints, or degraded ones when none is healthy (``degraded_fallback``)."""
        if self._candidates is None:
            self._candidates = self._candidate_set()
        return self._candidates

    def routed(self, canary: bool) -> tuple[CandidateSet, dict[str, Any]]:
        """During a canary (:attr:`routing`): the candidates and discovery body of the
        canary group (instances of the canary version) or of everyone else. A group
        with nothing to offer gets every candidate, so no caller is left without one."""
        cached = self._routed.get(canary)
        if cached is None:
            version = (self.routing or {}).get("version")
            cset = self._candidate_set(lambda i: (i.version == version) == canary)
            if not cset:
                cset = self.candidates()
            cached = self._routed[canary] = (cset, self._body(cset))
        return cached

    def health_summary(self) -> dict[str, Any]:
        """The service's entry in ``GET /health/services``: the seed's exact shape.

        ``status`` is the best status among its instances (healthy > degraded >
        critical): the service is as available as its best instance. ``latency`` is the
        mean EWMA latency (ms, rounded) of the instances that have that best status and
        a measurement; ``last_check`` the newest check of any instance. Both are ``None``
        before the first probe.
        """
        if self._health_summary is None:
            statuses = {iid: self.status_of(iid) for iid in self.instances}
            best = min(statuses.values(), key=STATUSES.index, default="critical")
            latencies = [
                latency
                for iid, status in statuses.items()
                if status == best
                and (latency := _number(self.health.get(iid, {}).get("latency"))) is not None
            ]
            checks = [
                str(self.health[iid]["last_check"])
                for iid in self.instances
                if isinstance(self.health.get(iid, {}).get("last_check"), str)
            ]
            self._health_summary = {
                "status": best,
                "latency": round(sum(latencies) / len(latencies)) if latencies else None,
                "last_check": max(checks) if checks else None,
            }
        return self._health_summary

    def discovery_body(self) -> dict[str, Any]:
        """The part of a discovery answer that only changes with the catalog."""
        if self._discovery is None:
            self._discovery = self._body(self.candidates())
        return self._discovery

    def _body(self, cset: CandidateSet) -> dict[str, Any]:
        candidates, degraded = cset.candidates, cset.degraded_fallback
        return {
            "service_name": self.name,
            "all_healthy_endpoints": [c.url for c in candidates],
            "confidence": {c.url: c.confidence for c in candidates},
            "connection_type": "direct_call",
            "endpoints": [
                {
                    "instance_id": c.instance.instance_id,
                    "url": c.url,
                    "host": c.instance.host,
                    "port": c.instance.port,
                    "weight": c.instance.weight,
                    "status": c.status,
                    "confidence": c.confidence,
                    "latency": c.latency_ms,
                    "load": c.load,
                }
                for c in candidates
            ],
            "degraded_fallback": degraded,
            "versions": sorted({str(c.instance.version) for c in candidates}),
        }

    def public(self) -> dict[str, Any]:
        """The service as API answers show it."""
        if self._public is None:
            newest = self._newest()
            reqs = newest.subscription_requirements if newest else None
            instances = [
                self._public_instance(i)
                for i in sorted(self.instances.values(), key=lambda i: i.instance_id)
            ]
            self._public = {
                "name": self.name,
                "tenant_capable": newest.tenant_capable if newest else True,
                "subscription_requirements": list(reqs) if reqs else None,
                "minimum_tier": minimum_tier(reqs),
                "resource_tier": newest.resource_tier if newest else "basic",
                "instances": instances,
                "healthy_instances": sum(1 for i in instances if i["status"] == "healthy"),
            }
        return self._public

    def _public_instance(self, inst: Instance) -> dict[str, Any]:
        return {
            "instance_id": inst.instance_id,
            "service_name": inst.service_name,
            "host": inst.host,
            "port": inst.port,
            "protocol": inst.protocol,
            "url": inst.url,
            "health_endpoint": inst.health_endpoint,
            "weight": inst.weight,
            "version": inst.version,
            "tags": list(inst.tags),
            "meta": inst.meta,
            "status": self.status_of(inst.instance_id),
            "load": inst.load,
            "ttl": inst.ttl,
            "registered_at": inst.registered_at,
            "check": inst.check_spec.to_record(),
            "draining": inst.instance_id in self.draining,
            "desired_version": self.draining.get(inst.instance_id, {}).get("desired_version"),
        }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class CatalogIndex:
    """Services by name, maintained from view events under ``catalog/`` and ``health/``."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceState] = {}
        self.catalog_version = 0
        """Bumped on every instance change (not health changes): lets the prober resync."""
        self.on_service_gone: list[Callable[[str], None]] = []
        """Called with a service's name when its last instance has gone, so whatever was
        kept per service (circuits, selection state) is forgotten with it."""

    def reset(self, items: dict[str, KeyValue]) -> None:
        """Rebuild from a snapshot (both prefixes arrive through separate listeners)."""
        for key, kv in items.items():
            self._put(key, kv.value, kv.mod_revision)

    def reset_prefix(self, prefix: str, items: dict[str, KeyValue]) -> None:
        """Forget everything under one prefix, then load ``items``."""
        had_instances = self._with_instances()
        if prefix == CATALOG_PREFIX:
            self.catalog_version += 1
        for state in self.services.values():
            if prefix == CATALOG_PREFIX:
                state.instances.clear()
            elif prefix == DRAINING_PREFIX:
                state.draining.clear()
            elif prefix == ROUTING_PREFIX:
                state.routing = None
            else:
                state.health.clear()
            state.invalidate()
        self.reset(items)
        self._drop_empty()
        if prefix == CATALOG_PREFIX:
            for name in sorted(had_instances - self._with_instances()):
                self._gone(name)

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """Apply one change."""
        if event.type is EventType.PUT:
            self._put(event.key, event.value or b"", event.revision)
        else:
            parts = self._split(event.key)
            self._delete(event.key)
            if parts is not None and parts[0] == CATALOG_PREFIX:
                state = self.services.get(parts[1])
                if state is None or not state.instances:
                    self._gone(parts[1])
        self._drop_empty()

    def service_count(self) -> int:
        """How many services have at least one instance."""
        return sum(1 for s in self.services.values() if s.instances)

    def _with_instances(self) -> set[str]:
        return {name for name, state in self.services.items() if state.instances}

    def _gone(self, name: str) -> None:
        for callback in self.on_service_gone:
            try:
                callback(name)
            except Exception:  # one consumer's bug must not stop the catalog
                log.exception("forgetting service %s failed", name)

    def get(self, name: str) -> ServiceState | None:
        """One service, if it has instances."""
        return self.services.get(name)

    def instance_count(self) -> int:
        """How many instances the catalog holds."""
        return sum(len(s.instances) for s in self.services.values())

    def _split(self, key: str) -> tuple[str, str, str] | None:
        for prefix in (CATALOG_PREFIX, HEALTH_PREFIX, DRAINING_PREFIX, ROUTING_PREFIX):
            if key.startswith(prefix):
                service, _, instance_id = key[len(prefix) :].partition("/")
                if service and instance_id:
                    return prefix, service, instance_id
        return None

    def _put(self, key: str, value: bytes, revision: int) -> None:
        parts = self._split(key)
        if parts is None:
            return
        prefix, service, instance_id = parts
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("ignoring unreadable record at %s", key)
            return
        state = self.services.setdefault(service, ServiceState(service))
        if prefix == CATALOG_PREFIX:
            self.catalog_version += 1
            try:
                state.instances[instance_id] = Instance.from_record(data, revision=revision)
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring malformed instance record at %s", key)
        elif prefix == DRAINING_PREFIX:
            state.draining[instance_id] = data if isinstance(data, dict) else {}
        elif prefix == ROUTING_PREFIX:
            state.routing = data if isinstance(data, dict) else None
        elif isinstance(data, dict):
            state.health[instance_id] = data
        state.invalidate()

    def _delete(self, key: str) -> None:
        parts = self._split(key)
        if parts is None:
            return
        prefix, service, instance_id = parts
        state = self.services.get(service)
        if state is None:
            return
        if prefix == CATALOG_PREFIX:
            self.catalog_version += 1
            state.instances.pop(instance_id, None)
        elif prefix == DRAINING_PREFIX:
            state.draining.pop(instance_id, None)
        elif prefix == ROUTING_PREFIX:
            state.routing = None
        else:
            state.health.pop(instance_id, None)
        state.invalidate()

    def _drop_empty(self) -> None:
        for name in [
            n
            for n, s in self.services.items()
            if not s.instances and not s.health and not s.draining and s.routing is None
        ]:
            del self.services[name]


class _PrefixListener:
    """Adapts :class:`CatalogIndex` to one view prefix."""

    def __init__(self, index: CatalogIndex, prefix: str) -> None:
        self.index = index
        self.prefix = prefix

    def reset(self, items: dict[str, KeyValue]) -> None:
        self.index.reset_prefix(self.prefix, items)

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        self.index.apply(event, previous)


def catalog_listeners(index: CatalogIndex) -> list[tuple[str, _PrefixListener]]:
    """The (prefix, listener) pairs that keep ``index`` current."""
    return [
        (p, _PrefixListener(index, p))
        for p in (CATALOG_PREFIX, HEALTH_PREFIX, DRAINING_PREFIX, ROUTING_PREFIX)
    ]
