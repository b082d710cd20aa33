"""The circuit endpoints' domain logic: state per tier and outcome reports."""

from __future__ import annotations

import time
from typing import Any

from facade.circuits.breakers import CircuitBreakers
from facade.discovery.lookup import DiscoveryService
from facade.models import CircuitReport
from facade.state.view import StateView
from shared.tenancy import TenantContext


class CircuitService:
    """``GET /circuits/{service}`` and ``POST /circuits/{service}/report``."""

    def __init__(
        self, view: StateView, discovery: DiscoveryService, circuits: CircuitBreakers
    ) -> None:
        self.view = view
        self.discovery = discovery
        self.circuits = circuits

    def describe(self, name: str, ctx: TenantContext) -> dict[str, Any]:
        """Every tier's circuit, plus ``state`` for the caller's own tier (the seed's
        ``get_circuit_state``)."""
        state = self.discovery.service_state(name)
        self.discovery.check_access(state, ctx)
        tier = self.discovery.effective_tier(ctx)
        tiers = self.circuits.describe(name, time.time())
        return {
            "service_name": name,
            "state": tiers[tier]["state"],
            "subscription_tier": tier,
            "tiers": tiers,
            "stale": self.view.stale,
        }

    async def report(self, name: str, report: CircuitReport, ctx: TenantContext) -> dict[str, Any]:
        """Count one call outcome for ``report.tier`` (every tier when absent)."""
        state = self.discovery.service_state(name)
        self.discovery.check_access(state, ctx)
        await self.circuits.record(name, report.success, report.latency_ms, tier=report.tier)
        return self.describe(name, ctx) | {"counted_for": [report.tier] if report.tier else None}
