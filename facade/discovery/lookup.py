"""Tenant-aware discovery: the read side, answered from the in-memory view only."""

from __future__ import annotations

import random
import time
from typing import Any

from facade.circuits.breakers import CircuitBreakers, CircuitVerdict
from facade.discovery.balancing import DEFAULT_STRATEGY, EndpointSelector
from facade.state.catalog import Candidate, CandidateSet, CatalogIndex, ServiceState
from facade.state.view import StateView
from facade.tenancy.tenant_directory import TenantDirectory
from shared.errors import CircuitOpen, NoHealthyEndpoint, ServiceNotFound, TierNotAllowed
from shared.tenancy import TenantContext, can_access, minimum_tier

DEFAULT_TIER = "free"


class DiscoveryService:
    """Answers "which services may I use?" and "where is X?" without touching the backend."""

    def __init__(
        self,
        view: StateView,
        catalog: CatalogIndex,
        circuits: CircuitBreakers,
        tenants: TenantDirectory,
        *,
        selector: EndpointSelector | None = None,
        default_strategy: str = DEFAULT_STRATEGY,
    ) -> None:
        self.view = view
        self.catalog = catalog
        self.circuits = circuits
        self.tenants = tenants
        self.selector = selector or EndpointSelector()
        self.default_strategy = default_strategy

    def provisioned_tier(self, tenant_id: str | None) -> str | None:
        """The tier a tenant was provisioned with, if it was."""
        tenant = self.tenants.get(tenant_id) if tenant_id is not None else None
        return tenant.subscription_tier if tenant is not None else None

    def effective_tier(self, ctx: TenantContext) -> str:
        """The caller's tier: asserted, else the tenant's provisioned tier, else free."""
        return ctx.tier or self.provisioned_tier(ctx.tenant_id) or DEFAULT_TIER

    def service_state(self, name: str) -> ServiceState:
        """A registered service by name; ServiceNotFound otherwise."""
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

    def describe(self, name: str, ctx: TenantContext) -> dict[str, Any]:
        """One service with all its instances, if the caller's tier may use it."""
        state = self.service_state(name)
        self.check_access(state, ctx)
        return state.public() | {"stale": self.view.stale}

    def check_access(
        self, state: ServiceState, ctx: TenantContext, tier: str | None = None
    ) -> None:
        """Raise TierNotAllowed when the caller's tier (``tier``, if already known) may not
        use the service."""
        if not ctx.is_tenant_scoped:
            return
        tier = tier or self.effective_tier(ctx)
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

    def _usable(
        self, name: str, ctx: TenantContext
    ) -> tuple[ServiceState, str, CircuitVerdict, float]:
        """The service, the caller's tier and that tier's circuit, access checked."""
        state = self.service_state(name)
        tier = self.effective_tier(ctx)
        self.check_access(state, ctx, tier)
        now = time.time()
        return state, tier, self.circuits.verdict(name, tier, now), now

    def _route(
        self, state: ServiceState, ctx: TenantContext
    ) -> tuple[CandidateSet, dict[str, Any]]:
        """The candidates and discovery body for this caller: everything, or during a
        canary the canary version for its tenants and share, the others for the rest."""
        if state.routing is None:
            return state.candidates(), state.discovery_body()
        return state.routed(_in_canary(state.routing, ctx))

    def discover(
        self, name: str, ctx: TenantContext, strategy: str | None = None
    ) -> dict[str, Any]:
        """Where to call ``name`` directly: a recommendation plus every usable endpoint.

        Only healthy instances are offered; degraded ones only when none is healthy
        (``degraded_fallback``). When the caller's tier has the service's circuit OPEN,
        no endpoint is offered and ``circuit`` says when trial calls may resume.
        """
        state, tier, verdict, now = self._usable(name, ctx)
        candidates, body = self._route(state, ctx)
        if verdict.is_open:
            return body | {
                "recommended_endpoint": None,
                "all_healthy_endpoints": [],
                "confidence": {},
                "endpoints": [],
                "circuit": verdict.public(now),
                "subscription_tier": tier,
                "stale": self.view.stale,
            }
        chosen = self.selector.pick(name, candidates, strategy or self.default_strategy)
        return body | {
            "recommended_endpoint": chosen.url if chosen else None,
            "circuit": verdict.public(now),
            "subscription_tier": tier,
            "stale": self.view.stale,
        }

    def endpoint(
        self, name: str, ctx: TenantContext, strategy: str | None = None
    ) -> dict[str, Any]:
        """The seed's ``get_load_balanced_endpoint``: one instance to call now.

        Raises CircuitOpen (with ``retry_at``) when the caller's tier has the circuit
        OPEN and NoHealthyEndpoint when every instance is critical.
        """
        state, tier, verdict, now = self._usable(name, ctx)
        if verdict.is_open:
            circuit = verdict.public(now)
            raise CircuitOpen(
                f"the circuit of {name!r} is open for the {tier!r} tier until "
                f"{circuit['retry_at']}",
                details={
                    "service_name": name,
                    "subscription_tier": tier,
                    "retry_at": circuit["retry_at"],
                    "retry_after": circuit["retry_after"],
                },
            )
        strategy = strategy or self.default_strategy
        candidates, _ = self._route(state, ctx)
        chosen = self.selector.pick(name, candidates, strategy)
        if chosen is None:
            raise NoHealthyEndpoint(
                f"no instance of {name!r} is healthy or degraded",
                details={"service_name": name, "instances": len(state.instances)},
            )
        return _endpoint_answer(chosen, strategy, candidates.degraded_fallback, verdict, now) | {
            "stale": self.view.stale
        }


def _in_canary(routing: dict[str, Any], ctx: TenantContext) -> bool:
    """Whether this answer goes to the canary group: a listed tenant always, everyone
    else with the canary's share of answers."""
    if ctx.tenant_id is not None and ctx.tenant_id in (routing.get("tenants") or ()):
        return True
    share = routing.get("weight_percent")
    return isinstance(share, int | float) and random.random() * 100 < share


def _endpoint_answer(
    chosen: Candidate, strategy: str, degraded: bool, verdict: CircuitVerdict, now: float
) -> dict[str, Any]:
    inst = chosen.instance
    return {
        "host": inst.host,
        "port": inst.port,
        "load": inst.load,
        "instance_id": inst.instance_id,
        "url": chosen.url,
        "status": chosen.status,
        "confidence": chosen.confidence,
        "strategy": strategy,
        "degraded_fallback": degraded,
        "circuit": verdict.public(now),
    }
