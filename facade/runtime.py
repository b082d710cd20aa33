"""The running hub: backend, view and domain services, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from adapters import Backend, create_backend
from facade.access.audit import AuditLog, AuditMetrics
from facade.access.rate_limits import RateLimiter
from facade.access.tokens import TOKENS_PREFIX, AccessControl, GrantWatch, TokenService
from facade.circuits.breakers import CIRCUITS_PREFIX, SPEC_POLICIES, CircuitBreakers, CircuitPolicy
from facade.coordination.backups import BackupScheduler
from facade.coordination.deployments import (
    DEPLOYMENTS_PREFIX,
    DeploymentDriver,
    DeploymentService,
)
from facade.coordination.maintenance import MaintenanceMode
from facade.coordination.system_backups import RUNS_PREFIX, SystemBackups
from facade.coordination.workflows import WorkflowService
from facade.discovery.circuit_status import CircuitService
from facade.discovery.lookup import DiscoveryService
from facade.health.prober import HealthProber
from facade.health.status import HealthMetrics, HealthService
from facade.settings import HubSettings
from facade.state.catalog import CatalogIndex, catalog_listeners
from facade.state.instances import RegistryService
from facade.state.leader_election import LEADER_PREFIX, LeaderElection
from facade.state.view import StateView
from facade.telemetry.error_groups import ErrorGroupService
from facade.telemetry.ingest import TelemetryService
from facade.telemetry.scaling import ScalingService
from facade.telemetry.store import create_telemetry_store
from facade.tenancy.config_keys import CONFIG_PREFIX
from facade.tenancy.config_store import ConfigIndex, ConfigService
from facade.tenancy.quotas import QuotaMetrics, QuotaService, usage_prefix
from facade.tenancy.tenant_directory import TENANTS_PREFIX, TenantDirectory
from facade.tenancy.tenant_service import TenantService
from facade.tenancy.tiers import calls_per_hour
from facade.tenancy.webhooks import WEBHOOKS_PREFIX, WebhookService, tenant_webhooks_prefix
from shared.backoff import Backoff
from shared.errors import BackendUnavailable, HubError

log = logging.getLogger("central_hub")

BOOTSTRAP_SHUTDOWN_WAIT = 30.0
"""Seconds a shutdown waits for a bootstrap already writing its token."""


class Hub:
    """Everything one hub process runs; routers reach it through ``app.state.hub``."""

    def __init__(self, settings: HubSettings, backend: Backend | None = None) -> None:
        """Build every service after everything it is given; nothing runs until :meth:`start`.

        One order: state (view, catalog, instances, tenant directory), circuits, discovery
        and health, error groups, tenancy (config before the tenant writes that reset it),
        access, metrics. Collaborators are constructor arguments; the only wiring after a
        construction is a listener subscribing to what it follows (a view prefix, a change
        callback).
        """
        self.settings = settings
        # An injected backend is the caller's: already opened, and closed by the caller.
        self.owns_backend = backend is None
        self.backend = backend or create_backend(settings.backend, **settings.backend_options())
        self._init_state(settings)
        self._init_health(settings)
        self.error_groups = ErrorGroupService(
            self.backend,
            self.view,
            visibility_timeout=settings.write_visibility_timeout,
            max_groups_per_service=settings.error_groups_per_service,
        )
        self._init_tenancy(settings)
        self._init_access(settings)
        self._init_coordination(settings)
        self._init_metrics()
        self._init_backups(settings)
        self._init_telemetry(settings)
        self._bootstrap_task: asyncio.Task[None] | None = None
        self._bootstrap_step: asyncio.Future[None] | None = None

    def _init_state(self, settings: HubSettings) -> None:
        """The watch-fed view, the catalog, instance writes and the tenant directory."""
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
        # Tenants first: discovery and the rate limiter read provisioned tiers from it.
        self.tenant_directory = TenantDirectory()
        self.view.add_listener(TENANTS_PREFIX, self.tenant_directory)

    def _init_health(self, settings: HubSettings) -> None:
        """Circuits, endpoint selection, health answers and the prober (DESIGN.md 5-6)."""
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
            self.tenant_directory,
            default_strategy=settings.selection_strategy,
        )
        self.circuit_service = CircuitService(self.view, self.discovery, self.circuits)
        self.catalog.on_service_gone += [
            self.circuits.forget_service,
            self.discovery.selector.forget,
        ]
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

    def _init_tenancy(self, settings: HubSettings) -> None:
        """Tenants, layered config, quotas and config webhooks (DESIGN.md 7-9)."""
        visibility = settings.write_visibility_timeout
        self.config_index = ConfigIndex()
        self.view.add_listener(CONFIG_PREFIX, self.config_index)
        self.config = ConfigService(
            self.backend,
            self.view,
            self.tenant_directory,
            self.config_index,
            visibility_timeout=visibility,
            history_limit=settings.config_history_limit,
        )
        # Removal resets the tenant's overrides, then drops its usage and webhooks.
        self.tenants = TenantService(
            self.backend,
            self.view,
            self.tenant_directory,
            self.config,
            cleanup_prefixes=[usage_prefix, tenant_webhooks_prefix],
            visibility_timeout=visibility,
        )
        self.quotas = QuotaService(
            self.backend,
            self.view,
            self.tenant_directory,
            self.config,
            visibility_timeout=visibility,
        )
        self.webhooks = WebhookService(
            self.backend,
            self.view,
            self.tenant_directory,
            self.config,
            visibility_timeout=visibility,
            max_attempts=settings.webhook_max_attempts,
            initial_backoff=settings.webhook_initial_backoff,
            max_backoff=settings.webhook_max_backoff,
            request_timeout=settings.webhook_timeout,
        )
        self.view.add_listener(WEBHOOKS_PREFIX, self.webhooks)

    def _init_access(self, settings: HubSettings) -> None:
        """Tokens, access control with its rate limits, the grant watch and the audit log."""
        admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.tokens = TokenService(
            self.backend,
            self.view,
            configured_admin_token=admin_token,
            visibility_timeout=settings.write_visibility_timeout,
        )
        self.access = AccessControl(
            self.tokens,
            RateLimiter(
                per_token_rate=settings.rate_limit_per_token,
                per_token_burst=settings.rate_limit_burst,
                # The tiers' hourly API allowance is the tier defaults' data, not a copy.
                calls_per_hour=calls_per_hour(),
                # Effective limits: global and per-tier config writes apply at once.
                limit_of=self.config.api_calls_per_hour,
            ),
            dev=settings.dev,
            anonymous_reads=settings.anonymous_reads,
            tier_of=self.discovery.provisioned_tier,
        )
        # Revocations, expiries and tenant removals end the streams and polls they allowed.
        self.grants = GrantWatch(lambda tenant_id: self.tenant_directory.get(tenant_id) is not None)
        self.view.add_listener(TOKENS_PREFIX, self.grants)
        self.tenant_directory.on_change.append(self.grants.tenants_changed)
        self.grants.on_end.append(self.config.changes.notify)
        self.audit = AuditLog(
            self.backend,
            retention_days=settings.audit_retention_days,
            max_records=settings.audit_max_records,
        )

    def _init_backups(self, settings: HubSettings) -> None:
        """Scheduled backups of the hub's state and system-wide service backups, each
        run by the replica elected for its role (docs/operations.md)."""
        self.backups: BackupScheduler | None = None
        if settings.backup_interval > 0:
            self.backups = BackupScheduler(
                self.backend,
                settings.backup_dir or settings.data_dir / "backups",
                interval=settings.backup_interval,
                keep=settings.backup_keep,
                include_audit=settings.backup_audit,
                leader_ttl=settings.leader_ttl,
            )
            self.view.add_listener(LEADER_PREFIX, self.backups.election)
        self.system_backups: SystemBackups | None = None
        if settings.system_backups:
            self.system_backups = SystemBackups(
                self.backend, self.catalog, leader_ttl=settings.leader_ttl
            )
            self.view.add_listener(LEADER_PREFIX, self.system_backups.election)
            self.view.add_listener(RUNS_PREFIX, self.system_backups)
        # Read-only mode for migrations: one key, read from this replica's view.
        self.maintenance = MaintenanceMode(self.backend, self.view)

    def _init_telemetry(self, settings: HubSettings) -> None:
        """The telemetry store, its ingest and the predictive scaling built on it."""
        self.telemetry_store = create_telemetry_store(settings.telemetry_store, settings.data_dir)
        self.telemetry = TelemetryService(self.telemetry_store)
        self.scaling = ScalingService(
            self.telemetry_store,
            self.discovery,
            self.config,
            refit_points=settings.forecast_refit_points,
            use_library=None if settings.forecast_library else False,
        )

    def _init_coordination(self, settings: HubSettings) -> None:
        """Workflow plans and deployments, driven by the elected replica (DESIGN.md 10)."""
        self.deployments = DeploymentService(
            self.backend,
            self.view,
            self.catalog,
            self.circuits,
            visibility_timeout=settings.write_visibility_timeout,
        )
        self.view.add_listener(DEPLOYMENTS_PREFIX, self.deployments)
        self.deployment_driver = DeploymentDriver(
            self.deployments, tick_seconds=settings.deployment_tick_seconds
        )
        self.deployment_election = LeaderElection(
            self.backend,
            "deployments",
            ttl=settings.leader_ttl,
            on_elected=self.deployment_driver.start,
            on_demoted=self.deployment_driver.stop,
        )
        self.view.add_listener(LEADER_PREFIX, self.deployment_election)
        self.workflows = WorkflowService(
            self.backend,
            self.view,
            self.catalog,
            self.discovery,
            self.circuits,
            visibility_timeout=settings.write_visibility_timeout,
        )

    def _init_metrics(self) -> None:
        """The hub's own Prometheus collectors (quotas, health, audit, in that order)."""
        # Per-hub registry: several hubs may run in one process (tests, benchmarks).
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.metrics_registry.register(QuotaMetrics(self.quotas))
        self.metrics_registry.register(HealthMetrics(self.catalog, self.circuits, self.prober))
        self.metrics_registry.register(AuditMetrics(self.audit))

    async def start(self) -> None:
        """Open the backend and sync the view; an unreachable backend is retried later."""
        opened = True
        if self.owns_backend:
            try:
                await self.backend.open()
            except BackendUnavailable as exc:
                if self.settings.require_backend:
                    raise
                opened = False
                log.error(
                    "backend %s unreachable at start-up (tried %s): %s; serving stale-tolerant "
                    "until it returns (--require-backend makes this fatal)",
                    self.backend.name,
                    self.backend.describe(),
                    exc,
                )
        await self.telemetry_store.open()
        await self.view.start(backend_open=opened, timeout=self.settings.view_start_timeout)
        self.audit.start()
        if not self.view.synced:
            log.error("started without a backend sync; serving nothing until it returns")
        if self.prober_election is not None:
            await self.prober_election.start()
        await self.deployment_election.start()
        await self.webhooks.start()
        if self.backups is not None:
            await self.backups.start()
        if self.system_backups is not None:
            await self.system_backups.start()
        if self.settings.dev:
            log.warning(
                "DEV MODE: authentication is OFF; anyone who can reach %s:%d is admin",
                self.settings.host,
                self.settings.port,
            )
        elif self.settings.admin_token is None:
            self._bootstrap_task = asyncio.create_task(self._bootstrap(), name="bootstrap")

    async def _bootstrap(self) -> None:
        """Create the first admin token once the backend is reachable."""
        backoff = Backoff(0.5, 5.0)
        while True:
            try:
                if self.view.synced:
                    # Shielded: a shutdown during start-up (e.g. the port was taken) waits
                    # for the transaction and the token file instead of cutting them short.
                    self._bootstrap_step = asyncio.ensure_future(self._bootstrap_once())
                    await asyncio.shield(self._bootstrap_step)
                    return
            except (HubError, OSError) as exc:
                log.warning("bootstrap admin token not created yet: %s", exc)
            await asyncio.sleep(backoff.next())

    async def _bootstrap_once(self) -> None:
        path = self.settings.bootstrap_token_path
        issued = await self.tokens.bootstrap(path)
        if issued is None:
            return
        # Printed once, on purpose not through logging (which may be shipped).
        why = "recovered from an interrupted bootstrap: new " if issued.recovered else ""
        print(
            f"central-hub: {why}bootstrap admin token (shown once, also in {path}, "
            f"mode 0600): {issued.token}",
            file=sys.stderr,
            flush=True,
        )

    async def wait_bootstrapped(self) -> None:
        """Wait until the bootstrap step (if any) has finished."""
        if self._bootstrap_task is not None:
            await self._bootstrap_task

    async def stop(self) -> None:
        """Stop probing (releasing leadership), stop following the backend and close it."""
        if self.prober_election is not None:
            await self.prober_election.stop()
        if self.backups is not None:
            await self.backups.stop()
        if self.system_backups is not None:
            await self.system_backups.stop()
        await self.deployment_election.stop()
        self.deployments.changes.close()  # ends deployment event streams
        self.config.changes.close()  # ends config streams and long polls
        await self.webhooks.stop()
        await self.audit.stop()  # stores the queued records while the backend is open
        if self._bootstrap_task is not None and not self._bootstrap_task.done():
            self._bootstrap_task.cancel()
        if self._bootstrap_step is not None and not self._bootstrap_step.done():
            # Never half a bootstrap: let the transaction and the token file finish.
            await asyncio.wait({self._bootstrap_step}, timeout=BOOTSTRAP_SHUTDOWN_WAIT)
        await self.view.stop()
        await self.scaling.close()  # background forecast refits read the telemetry store
        await self.telemetry_store.close()
        if self.owns_backend:
            await self.backend.close()

    async def health(self) -> dict[str, Any]:
        """The hub's own health: backend reachable, view revision, stale or not."""
        reachable = True
        error: str | None = None
        try:
            async with asyncio.timeout(2.0):
                await self.backend.current_revision()
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
                "services": self.catalog.service_count(),
                "instances": self.catalog.instance_count(),
            },
            "prober": self._prober_health(),
            "deployments": self.deployment_election.describe(),
        }

    def _prober_health(self) -> dict[str, Any]:
        if self.prober is None or self.prober_election is None:
            native = self.backend.capabilities.native_health_checks
            return {"enabled": False, "reason": "backend checks natively" if native else "off"}
        return {"enabled": True, **self.prober_election.describe(), **self.prober.describe()}
