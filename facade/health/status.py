"""Health answers (``GET /health/services``), read from the view only.

The results themselves are written by the prober of the elected replica (or by the
backend's native checks, Consul) under ``health/<service>/<instance>``; every replica
answers from its view, so all of them say the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from facade.circuits.breakers import CircuitBreakers
from facade.discovery.lookup import DiscoveryService
from facade.health.prober import HealthProber
from facade.state.catalog import CatalogIndex, ServiceState
from facade.state.confidence import confidence_score
from facade.state.view import StateView
from shared.tenancy import TenantContext, can_access


class HealthService:
    """Per-service and per-instance health, in the seed's shape."""

    def __init__(
        self,
        view: StateView,
        catalog: CatalogIndex,
        discovery: DiscoveryService,
        *,
        checked_by: str,
    ) -> None:
        self.view = view
        self.catalog = catalog
        self.discovery = discovery
        self.checked_by = checked_by

    def services(self, ctx: TenantContext) -> dict[str, dict[str, Any]]:
        """``{"<service>": {"status", "latency", "last_check"}, ...}`` and nothing else.

        With a tenant context, only the services the caller's tier may use (as
        ``GET /services/`` filters them).
        """
        tier = self.discovery.effective_tier(ctx) if ctx.is_tenant_scoped else None
        return {
            name: state.health_summary()
            for name, state in sorted(self.catalog.services.items())
            if state.instances
            and (tier is None or can_access(state.subscription_requirements, tier))
        }

    def service(self, name: str, ctx: TenantContext) -> dict[str, Any]:
        """One service's summary plus every instance's latest result."""
        state = self.discovery.service_state(name)
        self.discovery.check_access(state, ctx)
        return state.health_summary() | {
            "service_name": name,
            "instances": [
                self._instance(state, iid)
                for iid in sorted(state.instances, key=lambda i: (state.status_of(i), i))
            ],
            "checked_by": self.checked_by,
            "stale": self.view.stale,
        }

    @staticmethod
    def _instance(state: ServiceState, instance_id: str) -> dict[str, Any]:
        inst = state.instances[instance_id]
        record = state.health.get(instance_id, {})
        status = state.status_of(instance_id)
        spec = inst.check_spec

        def number(key: str) -> float | None:
            value = record.get(key)
            return value if isinstance(value, int | float) else None

        latency = number("latency")
        return {
            "instance_id": instance_id,
            "url": inst.url,
            "status": status,
            "latency": round(latency) if latency is not None else None,
            "last_check": record.get("last_check"),
            "success_rate": number("success_rate"),
            "latency_trend": number("latency_trend"),
            "consecutive_failures": int(number("consecutive_failures") or 0),
            "consecutive_successes": int(number("consecutive_successes") or 0),
            "critical_since": record.get("critical_since"),
            "output": str(record.get("output") or ""),
            "check": spec.to_record(),
            "confidence": (
                None
                if status == "critical"
                else confidence_score(
                    success_rate=number("success_rate"),
                    latency_ms=latency,
                    latency_trend=number("latency_trend"),
                    degraded_latency_ms=spec.degraded_latency_ms,
                )
            ),
        }


_CIRCUIT_VALUES = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


class HealthMetrics(Collector):
    """Prometheus figures computed at scrape time: instance health, circuits, probing."""

    def __init__(
        self, catalog: CatalogIndex, circuits: CircuitBreakers, prober: HealthProber | None
    ) -> None:
        self.catalog = catalog
        self.circuits = circuits
        self.prober = prober

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        """Instances per status, circuit state per service and tier, prober lag and work."""
        instances = GaugeMetricFamily(
            "hub_instances", "Registered instances by health status", labels=["status"]
        )
        counts = {"healthy": 0, "degraded": 0, "critical": 0}
        for state in self.catalog.services.values():
            for iid in state.instances:
                counts[state.status_of(iid)] += 1
        for status, count in counts.items():
            instances.add_metric([status], count)
        circuits = GaugeMetricFamily(
            "hub_circuit_state",
            "Circuit state per service and tier (0 closed, 1 half-open, 2 open)",
            labels=["service", "tier"],
        )
        for service, tier, name in self.circuits.states():
            circuits.add_metric([service, tier], _CIRCUIT_VALUES[name])
        yield from (instances, circuits)
        if self.prober is None or not self.prober.running:
            return
        summary = self.prober.stats.summary()
        lag = GaugeMetricFamily(
            "hub_probe_start_lag_ms",
            "How late probes start against their schedule (this leader term)",
            labels=["quantile"],
        )
        for quantile, key in (("0.5", "p50"), ("0.99", "p99"), ("1", "max")):
            if summary["lag_ms"][key] is not None:
                lag.add_metric([quantile], summary["lag_ms"][key])
        probes = CounterMetricFamily(
            "hub_probes", "Health probes run in this leader term", labels=["outcome"]
        )
        probes.add_metric(["passed"], summary["probes"] - summary["failures"])
        probes.add_metric(["failed"], summary["failures"])
        yield from (lag, probes)
