"""Health answers (``GET /health/services``), read from the view only.

The results themselves are written by the prober of the elected replica (or by the
backend's native checks, Consul) under ``health/<service>/<instance>``; every replica
answers from its view, so all of them say the same.
"""

from __future__ import annotations

from typing import Any

from facade.catalog import CatalogIndex, ServiceState
from facade.discovery import DiscoveryService
from facade.scoring import confidence_score
from facade.view import StateView
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
