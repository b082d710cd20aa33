"""Tenant-aware discovery: the read side, answered from the in-memory view only."""

from __future__ import annotations

from typing import Any

import orjson

from facade.balancing import SmoothWeightedRoundRobin
from facade.catalog import CatalogIndex, ServiceState
from facade.view import StateView
from shared.errors import ServiceNotFound, TierNotAllowed
from shared.tenancy import TenantContext, can_access, minimum_tier

TENANTS_PREFIX = "tenants/"
DEFAULT_TIER = "free"


class DiscoveryService:
    """Answers "which services may I use?" and "where is X?" without touching the backend."""

    def __init__(self, view: StateView, catalog: CatalogIndex) -> None:
        self.view = view
        self.catalog = catalog
        self.balancer = SmoothWeightedRoundRobin()

    def provisioned_tier(self, tenant_id: str | None) -> str | None:
        """The tier a tenant was provisioned with, if it was."""
        if tenant_id is None:
            return None
        kv = self.view.get(f"{TENANTS_PREFIX}{tenant_id}")
        if kv is None:
            return None
        tier = orjson.loads(kv.value).get("subscription_tier")
        return tier if isinstance(tier, str) else None

    def effective_tier(self, ctx: TenantContext) -> str:
        """The caller's tier: asserted, else the tenant's provisioned tier, else free."""
        return ctx.tier or self.provisioned_tier(ctx.tenant_id) or DEFAULT_TIER

    def _service(self, name: str) -> ServiceState:
        state = self.catalog.get(name)
        if state is None or not state.instances:
            raise ServiceNotFound(
                f"no service named {name!r} is registered", details={"name": name}
            )
        return state

    def list_services(self, ctx: TenantContext, *, legacy_mode: bool) -> dict[str, Any]:
        """All services (legacy) or those the caller's tier may use."""
        filtered = ctx.is_tenant_scoped and not legacy_mode
        tier = self.effective_tier(ctx) if filtered else None
        services = {
            name: state.public()
            for name, state in sorted(self.catalog.services.items())
            if state.instances
            and (tier is None or can_access(state.subscription_requirements, tier))
        }
        return {
            "services": services,
            "count": len(services),
            "filtered": filtered,
            "tenant_id": ctx.tenant_id,
            "subscription_tier": tier,
            "stale": self.view.stale,
            "revision": self.view.revision,
        }

    def describe(self, name: str) -> dict[str, Any]:
        """One service with all its instances."""
        return self._service(name).public() | {"stale": self.view.stale}

    def check_access(self, state: ServiceState, ctx: TenantContext) -> None:
        """Raise TierNotAllowed when the caller's tier may not use the service."""
        if not ctx.is_tenant_scoped:
            return
        tier = self.effective_tier(ctx)
        reqs = state.subscription_requirements
        if not can_access(reqs, tier):
            raise TierNotAllowed(
                f"service {state.name!r} requires the {minimum_tier(reqs)!r} tier or higher; "
                f"the caller's tier is {tier!r}",
                details={
                    "service_name": state.name,
                    "required_tiers": list(reqs or ()),
                    "minimum_tier": minimum_tier(reqs),
                    "subscription_tier": tier,
                },
            )

    def discover(self, name: str, ctx: TenantContext) -> dict[str, Any]:
        """Where to call ``name`` directly: a recommendation plus every usable endpoint."""
        state = self._service(name)
        self.check_access(state, ctx)
        candidates, _ = state.candidates()
        chosen = self.balancer.pick(name, candidates)
        return state.discovery_body() | {
            "recommended_endpoint": chosen.url if chosen else None,
            "stale": self.view.stale,
        }
