"""The running hub: backend, view and domain services, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from adapters import Backend, create_backend
from facade.catalog import CatalogIndex, catalog_listeners
from facade.circuit_service import CircuitService
from facade.circuits import CIRCUITS_PREFIX, SPEC_POLICIES, CircuitBreakers, CircuitPolicy
from facade.discovery import DiscoveryService
from facade.health import HealthService
from facade.leader import LEADER_PREFIX, LeaderElection
from facade.prober import HealthProber
from facade.registry import RegistryService
from facade.settings import HubSettings
from facade.view import StateView
from shared.errors import BackendUnavailable, HubError

log = logging.getLogger("central_hub")


class Hub:
    """Everything one hub process runs; routers reach it through ``app.state.hub``."""

    def __init__(self, settings: HubSettings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.backend = backend or create_backend(settings.backend, **settings.backend_options())
        self.view = StateView(self.backend)
        self.catalog = CatalogIndex()
        for prefix, listener in catalog_listeners(self.catalog):
            self.view.add_listener(prefix, listener)
        self.registry = RegistryService(
            self.backend,
            self.view,
            default_ttl=settings.default_ttl,
            visibility_timeout=settings.write_visibility_timeout,
        )
        self.circuits = CircuitBreakers(
            self.backend,
            self.view,
            policies=SPEC_POLICIES
            | {
                tier: CircuitPolicy(t.failure_rate, t.open_seconds)
                for tier, t in settings.circuit_thresholds.items()
            },
            window_seconds=settings.circuit_window_seconds,
            minimum_calls=settings.circuit_minimum_calls,
            half_open_successes=settings.circuit_half_open_successes,
            visibility_timeout=settings.write_visibility_timeout,
        )
        self.view.add_listener(CIRCUITS_PREFIX, self.circuits)
        self.discovery = DiscoveryService(
            self.view,
            self.catalog,
            self.circuits,
            default_strategy=settings.selection_strategy,
        )
        self.circuit_service = CircuitService(self.view, self.discovery, self.circuits)
        self.circuit_service = CircuitService(self.view, self.discovery, self.circuits)
        native = self.backend.capabilities.native_health_checks
        self.health_checks = HealthService(
            self.view, self.catalog, self.discovery, checked_by="backend" if native else "hub"
        )
        # Backends with native checks (Consul) probe themselves: the hub must not.
        self.prober: HealthProber | None = None
        self.prober_election: LeaderElection | None = None
        if settings.probing and not native:
            self.prober = HealthProber(
                self.backend,
                self.view,
                self.catalog,
                self.circuits,
                self.registry,
                concurrency=settings.probe_concurrency,
                refresh_seconds=settings.health_refresh_seconds,
            )
            self.prober_election = LeaderElection(
                self.backend,
                "prober",
                ttl=settings.leader_ttl,
                on_elected=self.prober.start,
                on_demoted=self.prober.stop,
            )
            self.view.add_listener(LEADER_PREFIX, self.prober_election)

    async def start(self) -> None:
        """Open the backend and sync the view; an unreachable backend is retried later."""
        opened = True
        try:
            await self.backend.open()
        except BackendUnavailable as exc:
            opened = False
            log.error("backend %s unreachable at start-up: %s", self.backend.name, exc)
        await self.view.start(backend_open=opened, timeout=self.settings.view_start_timeout)
        if not self.view.synced:
            log.error("started without a backend sync; serving nothing until it returns")
        if self.prober_election is not None:
            await self.prober_election.start()

    async def stop(self) -> None:
        """Stop probing (releasing leadership), stop following the backend and close it."""
        if self.prober_election is not None:
            await self.prober_election.stop()
        await self.view.stop()
        await self.backend.close()

    async def health(self) -> dict[str, Any]:
        """The hub's own health: backend reachable, view revision, stale or not."""
        reachable = True
        error: str | None = None
        try:
            await asyncio.wait_for(self.backend.current_revision(), 2.0)
        except (HubError, TimeoutError) as exc:
            reachable = False
            error = str(exc) or type(exc).__name__
        if not self.view.synced or (not reachable and self.view.stale):
            status = "unhealthy" if not self.view.synced else "degraded"
        elif self.view.stale or not reachable:
            status = "degraded"
        else:
            status = "healthy"
        backend = self.backend.describe() | {"reachable": reachable}
        if error:
            backend["error"] = error
        return {
            "status": status,
            "backend": backend,
            "view": {
                "revision": self.view.revision,
                "synced": self.view.synced,
                "stale": self.view.stale,
                "services": len(self.catalog.services),
                "instances": self.catalog.instance_count(),
            },
            "prober": self._prober_health(),
        }

    def _prober_health(self) -> dict[str, Any]:
        if self.prober is None or self.prober_election is None:
            native = self.backend.capabilities.native_health_checks
            return {"enabled": False, "reason": "backend checks natively" if native else "off"}
        return {"enabled": True, **self.prober_election.describe(), **self.prober.describe()}
