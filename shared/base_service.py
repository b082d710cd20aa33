"""BaseService: the standard life cycle of a platform service around the hub.

Usage, as in the spec::

    class ApiGatewayService(BaseService):
        def __init__(self) -> None:
            super().__init__(ServiceConfig(service_name="api-gateway", version="2.5.0", port=8000))

        async def on_config_change(self, snapshot: ConfigSnapshot) -> None:
            self.rate_limits = snapshot.config.get("rate_limits", {})

    service = ApiGatewayService()
    app = service.create_app()        # FastAPI app with /health and the life cycle
    service.run(app)                  # uvicorn, with SIGTERM handled as below

Life cycle:

- **start** (the app's lifespan start-up): a background task registers the instance
  with the hub, retrying with capped backoff for as long as the hub is not there (the
  service serves meanwhile); then it heartbeats every ``heartbeat_interval`` seconds,
  reporting :meth:`current_load`, and registers again if the hub says the instance
  expired. With ``config_tenant_id`` (or ``follow_global_config``) set, another task
  long-polls that tenant's effective configuration (or the global layer)
  and calls :meth:`on_config_change` with every new version (hot reload).
- **health**: ``GET <health_endpoint>`` answers 200 with the service's state once it is
  registered; 503 while unregistered (not ready: e.g. no ``CENTRAL_HUB_TOKEN``, or the hub
  unreachable) and while draining, so the hub's probes agree with the deregistration.
- **draining**: when a deployment marks the instance draining (the hub says so in the
  heartbeat answer), :meth:`on_draining` is called once with the version replacing it;
  discovery has already stopped offering the instance, so it can finish in-flight work.
- **SIGTERM** (with :meth:`run`): the instance is deregistered *first*, then the service
  waits ``drain_seconds`` for callers holding the old discovery answer, and only then does
  uvicorn stop accepting connections and finish in-flight requests. A second signal
  forces the exit. Under another server the lifespan shutdown deregisters instead.

FastAPI and uvicorn are imported only by the methods that need them, so importing this
module needs only the client's dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from shared.client import AsyncHubClient, ConfigSnapshot, Registration, RetryPolicy
from shared.config import environment_name, load_template, service_defaults
from shared.error_dna import ErrorAnalysis, ErrorDNA
from shared.errors import HubError, InvalidRequest, NotFound
from shared.logs import (
    bind_tenant,
    json_logging_configured,
    new_correlation_id,
    reset_tenant,
    set_service_name,
)
from shared.patterns.response import StandardResponse
from shared.performance import PerformanceTracker
from shared.tenancy import HEADER_CORRELATION_ID, TenantContext

if TYPE_CHECKING:
    from fastapi import FastAPI, Request, Response
    from prometheus_client import CollectorRegistry

    from shared.patterns.database import StandardDatabaseManager

log = logging.getLogger(__name__)

HUB_URL_VARIABLE = "CENTRAL_HUB_URL"
HUB_TOKEN_VARIABLE = "CENTRAL_HUB_TOKEN"
"""Environment variable holding the service's bearer token for the hub."""
ADVERTISE_HOST_VARIABLE = "SERVICE_ADVERTISE_HOST"


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How a service runs and how it presents itself to the hub.

    The first three are the spec's ``ServiceConfig(service_name, version, port)``; the
    rest have defaults suitable for development (see ``shared/config/*.json``).

    Attributes:
        host: address to bind.
        advertise_host: address other services should call; defaults to
            ``$SERVICE_ADVERTISE_HOST``, else ``host``, else the host name when binding
            every interface.
        hub_url: the hub; default ``$CENTRAL_HUB_URL`` or http://127.0.0.1:7000.
        ttl: seconds without a heartbeat after which the hub drops the instance.
        health_check: how the hub checks the instance (``{"kind": "http", "interval":
            5, ...}``); None lets the hub choose from protocol and TTL.
        heartbeat_interval: seconds between heartbeats (default a third of ``ttl``).
        register_max_delay: cap of the backoff between registration attempts.
        drain_seconds: time between deregistering and refusing new connections.
        config_tenant_id: tenant whose effective configuration to follow.
        follow_global_config: without ``config_tenant_id``, follow the global layer.
        config_wait: long-poll wait for configuration changes, in seconds.
        report_errors: send new ErrorDNA groups to the hub (``POST /errors``).
        instance_id: stable instance id (default: the hub derives one).
        backup_endpoint: path the hub POSTs to in system-wide backups (served only when
            the service gives :class:`BaseService` a ``backup_hook``).
        backup_depends_on: services whose backup must finish before this one's.
        backup_timeout: seconds the hub waits for this service's backup.
    """

    service_name: str
    version: str = "0.1.0"
    port: int = 8000
    host: str = "127.0.0.1"
    advertise_host: str | None = field(
        default_factory=lambda: os.environ.get(ADVERTISE_HOST_VARIABLE) or None
    )
    hub_url: str = field(
        default_factory=lambda: os.environ.get(HUB_URL_VARIABLE, "http://127.0.0.1:7000")
    )
    hub_token: str | None = field(
        default_factory=lambda: os.environ.get(HUB_TOKEN_VARIABLE) or None
    )
    protocol: str = "http"
    health_endpoint: str = "/health"
    metrics_endpoint: str = "/metrics"
    tenant_capable: bool = True
    subscription_requirements: tuple[str, ...] | None = None
    resource_tier: str = "basic"
    weight: int = 1
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    ttl: int = 15
    health_check: dict[str, Any] | None = None
    heartbeat_interval: float | None = None
    register_max_delay: float = 5.0
    drain_seconds: float = 0.0
    hub_timeout: float = 5.0
    hub_retry: RetryPolicy = field(default_factory=RetryPolicy)
    config_tenant_id: str | None = None
    follow_global_config: bool = False
    config_wait: float = 30.0
    report_errors: bool = True
    instance_id: str | None = None
    environment: str = "development"
    backup_endpoint: str = "/backup"
    backup_depends_on: tuple[str, ...] = ()
    backup_timeout: float = 300.0

    @property
    def address(self) -> str:
        """The host other services are told to call."""
        if self.advertise_host:
            return self.advertise_host
        # Bound to every interface: the machine's name is what peers can reach (in a
        # container, the container's address).
        return socket.gethostname() if self.host in {"0.0.0.0", "::", ""} else self.host

    @property
    def heartbeat_every(self) -> float:
        """Seconds between heartbeats."""
        return self.heartbeat_interval or max(self.ttl / 3, 0.5)

    def registration(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`AsyncHubClient.register` for this instance."""
        return {
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
            "meta": {"environment": self.environment, **self.meta},
            "ttl": self.ttl,
            "instance_id": self.instance_id,
            "check": self.health_check,
        }

    @classmethod
    def from_environment(
        cls, service_name: str, version: str = "0.1.0", environment: str | None = None, **kw: Any
    ) -> ServiceConfig:
        """A config from the templates: the service's entry in ``service-discovery.json``,
        the environment's ``client`` and ``service`` sections, ``$CENTRAL_HUB_URL``, and
        finally ``kw`` on top."""
        env = environment_name(environment)
        template = load_template(env)
        client, service = template["client"], template["service"]
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            "environment": env,
            "hub_url": os.environ.get(HUB_URL_VARIABLE, client["hub_url"]),
            "hub_timeout": client["timeout_seconds"],
            "hub_retry": RetryPolicy(**client["retry"]),
            "host": service["host"],
            "ttl": service["ttl_seconds"],
            "heartbeat_interval": service["heartbeat_interval_seconds"],
            "drain_seconds": service["drain_seconds"],
            "register_max_delay": service["register_max_delay_seconds"],
            "report_errors": service["report_errors"],
        }
        for key, value in service_defaults(service_name).items():
            if key in known:
                values[key] = tuple(value) if isinstance(value, list) else value
        values.update(kw)
        return cls(service_name=service_name, version=version, **values)


@dataclass(frozen=True, slots=True)
class BackupRequest:
    """One system-wide backup, as the hub asks a service for its part.

    Attributes:
        backup_id: the run's id (the same for every service, and for a repeated call
            after the hub's coordinator changed: use it to avoid doing the work twice).
        epoch: the run's epoch, a number that only grows across runs.
        service: this service's name.
    """

    backup_id: str
    epoch: int
    service: str


BackupHook = Callable[[BackupRequest], Awaitable[str | None]]
"""A service's backup: does the work and returns where it put it (reported to the hub)."""


class BaseService:
    """Registration, heartbeats, config hot reload, health and graceful shutdown.

    Subclasses override the hooks :meth:`on_start`, :meth:`on_stop`,
    :meth:`on_config_change`, :meth:`current_load` and :meth:`health_details`.

    Args:
        config: the service's :class:`ServiceConfig`.
        client: the hub client to use (default: one built from the config).
        metrics_registry: Prometheus registry for the service's tracker.
        backup_hook: the service's backup (a coroutine function taking a
            :class:`BackupRequest` and returning a location); given, the service declares
            itself for system-wide backups at registration and :meth:`install` serves
            ``POST config.backup_endpoint`` for the hub.
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        client: AsyncHubClient | None = None,
        metrics_registry: CollectorRegistry | None = None,
        backup_hook: BackupHook | None = None,
    ) -> None:
        self.config = config
        self.backup_hook = backup_hook
        self.backups: list[BackupRequest] = []
        """Backup requests served, oldest first."""
        self.logger = logging.getLogger(config.service_name)
        self._owns_client = client is None
        self.client = client or AsyncHubClient(
            config.hub_url,
            token=config.hub_token,
            timeout=config.hub_timeout,
            retry=config.hub_retry,
            service_name=config.service_name,
        )
        self.tracker = PerformanceTracker(config.service_name, registry=metrics_registry)
        self.responses = StandardResponse(config.service_name, config.version)
        # A StandardDatabaseManager, if the service has one: its health joins /health.
        self.database: StandardDatabaseManager | None = None
        self.error_dna = ErrorDNA(
            config.service_name, reporter=self._report_error if config.report_errors else None
        )
        self.registration: Registration | None = None
        self.config_snapshot: ConfigSnapshot | None = None
        self.state = "created"  # created -> starting -> running -> draining -> stopped
        self.started_at: float | None = None
        self.registered = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Future[None] | None = None
        self._deregistered = False
        self.draining_requested = False
        """Whether a deployment has marked this instance draining."""
        self.desired_version: str | None = None
        """The version a deployment is replacing this instance with."""

    # -- hooks -------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Called once at start, before registration begins."""

    async def on_stop(self) -> None:
        """Called once at stop, after deregistration."""

    async def on_config_change(self, snapshot: ConfigSnapshot) -> None:
        """Called with each new version of the followed configuration."""

    async def on_draining(self, desired_version: str | None) -> None:
        """Called once when a deployment marks this instance draining (learnt from the
        next heartbeat): discovery no longer offers it, and an executor will stop it and
        start ``desired_version``. Finish in-flight work here; the default does nothing
        (the executor's stop, e.g. SIGTERM, runs the graceful shutdown)."""

    def current_load(self) -> float | None:
        """The load (0..1) reported with each heartbeat; ``None`` reports none."""
        return None

    def health_details(self) -> dict[str, Any]:
        """Extra fields for the health answer."""
        return {}

    # -- life cycle --------------------------------------------------------------------

    @property
    def instance_id(self) -> str | None:
        """The hub's id of this instance, once registered."""
        return self.registration.instance_id if self.registration else None

    async def start(self) -> None:
        """Begin the life cycle; returns at once (registration continues in the background)."""
        if self.state != "created":
            return  # started already (a stopped service has closed its client: make a new one)
        set_service_name(self.config.service_name)
        self._loop = asyncio.get_running_loop()
        self.state = "starting"
        self.started_at = time.time()
        self._deregistered = False
        await self.on_start()
        if not self.config.hub_token:
            self.logger.warning(
                f"no hub token (set {HUB_TOKEN_VARIABLE}): the hub refuses the registration "
                "unless it runs in dev mode; /health answers 503 until it is accepted"
            )
        self._spawn(self._registration_loop(), "registration")
        if self.config.config_tenant_id or self.config.follow_global_config:
            self._spawn(self._config_loop(self.config.config_tenant_id), "config")
        self.state = "running"

    async def wait_registered(self, timeout: float | None = None) -> Registration:
        """Wait until the hub has accepted the registration."""
        await asyncio.wait_for(self.registered.wait(), timeout)
        assert self.registration is not None
        return self.registration

    async def begin_shutdown(self) -> None:
        """Deregister now and drain; the process keeps serving until :meth:`stop`.

        The first half of a graceful stop, run on SIGTERM before the server stops
        accepting connections. Every caller waits for the same single shutdown.
        """
        if self.state in {"created", "stopped"}:
            return
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._shutdown_sequence())
        # Shielded: a caller that gives up waiting does not abort the deregistration.
        await asyncio.shield(self._shutdown)

    async def _shutdown_sequence(self) -> None:
        """Stop heartbeats, deregister, then wait ``drain_seconds``."""
        self.state = "draining"
        # Stop heartbeats and re-registration first, and wait for them, so no register
        # call of ours can land at the hub after the deregistration below.
        stopping = [t for t in self._tasks if t.get_name() in {"registration", "config"}]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)
        await self._deregister()
        if self.config.drain_seconds > 0:
            await asyncio.sleep(self.config.drain_seconds)

    async def stop(self) -> None:
        """Deregister (if not done yet), stop background work, run :meth:`on_stop`."""
        if self.state in {"stopped", "created"}:
            return
        await self.begin_shutdown()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.on_stop()
        finally:
            self.state = "stopped"
            if self._owns_client:
                await self.client.aclose()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[BaseService]:
        """``async with service.running():`` — start, then stop on exit (for lifespans)."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    @property
    def is_registered(self) -> bool:
        """Whether the hub currently holds this instance's registration."""
        return self.registered.is_set() and not self._deregistered

    def health(self) -> dict[str, Any]:
        """The health answer: state, identity, registration and config version.

        ``status`` is ``healthy`` only while running *and* registered; the health route
        answers 503 otherwise (starting, unregistered, draining, stopped).
        """
        status = {"running": "healthy", "starting": "starting"}.get(self.state, self.state)
        if status == "healthy" and not self.is_registered:
            status = "unregistered"  # serving, but not ready until the hub knows it
        return {
            "status": status,
            "service": self.config.service_name,
            "version": self.config.version,
            "instance_id": self.instance_id,
            "registered": self.is_registered,
            "uptime_seconds": round(time.time() - self.started_at, 3) if self.started_at else 0,
            "config_version": self.config_snapshot.version if self.config_snapshot else None,
            **self.health_details(),
        }

    # -- background work -----------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a named background task that :meth:`stop` cancels."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _register_once(self) -> Registration:
        """One registration call; records the hub's answer."""
        reg = await self.client.register(
            self.config.service_name,
            self.config.address,
            self.config.port,
            **self.config.registration(),
            backup=self._backup_declaration(),
        )
        self.registration = reg
        self._deregistered = False
        self.registered.set()
        return reg

    async def _register_until_accepted(self) -> Registration | None:
        """Register, retrying with capped backoff while the hub is unreachable/unavailable.

        Returns ``None`` when the hub rejects the registration itself (a 4xx other than
        rate limiting): retrying the same body could not succeed.
        """
        policy = RetryPolicy(attempts=1, base_delay=0.2, max_delay=self.config.register_max_delay)
        attempt = 0
        while True:
            try:
                reg = await self._register_once()
            except InvalidRequest as exc:
                self.logger.error(
                    "hub rejected the registration; not retrying",
                    extra={"error_code": exc.code, "details": exc.details},
                )
                self.state = "registration_rejected"
                return None
            except HubError as exc:
                delay = policy.delay(min(attempt, 10))
                self.logger.warning(
                    "registration failed, retrying",
                    extra={"error_code": exc.code, "retry_in_seconds": round(delay, 3)},
                )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self.logger.info(
                "registered with the hub",
                extra={"instance_id": reg.instance_id, "hub_url": self.config.hub_url},
            )
            return reg

    async def _registration_loop(self) -> None:
        """Register, then heartbeat until cancelled, registering again when expired."""
        reg = await self._register_until_accepted()
        if reg is None:
            return
        while True:
            await asyncio.sleep(self.config.heartbeat_every)
            try:
                beat = await self.client.heartbeat(
                    self.config.service_name, reg.instance_id, load=self.current_load()
                )
                await self._note_draining(beat)
            except NotFound:
                # The hub expired us (missed TTL, or the hub lost state): register again.
                self.logger.warning("hub forgot this instance; registering again")
                self.registered.clear()
                new_reg = await self._register_until_accepted()
                if new_reg is None:
                    return
                reg = new_reg
            except HubError as exc:
                self.logger.warning("heartbeat failed", extra={"error_code": exc.code})

    async def _note_draining(self, beat: dict[str, Any]) -> None:
        """Call :meth:`on_draining` the first time a heartbeat says the instance drains."""
        if not beat.get("draining") or self.draining_requested:
            return
        self.draining_requested = True
        self.desired_version = beat.get("desired_version")
        self.logger.info(
            "a deployment drains this instance (next version %s)", self.desired_version
        )
        try:
            await self.on_draining(self.desired_version)
        except Exception:  # the service's hook must not stop the heartbeats
            self.logger.exception("on_draining failed")

    async def _config_loop(self, tenant_id: str | None) -> None:
        """Follow a tenant's config and call :meth:`on_config_change` per new version."""
        while True:
            try:
                async for snapshot in self.client.watch_config(
                    tenant_id, wait=self.config.config_wait
                ):
                    previous = self.config_snapshot
                    self.config_snapshot = snapshot
                    if previous is None or previous.version != snapshot.version:
                        try:
                            await self.on_config_change(snapshot)
                        except Exception as exc:
                            self.error_dna.analyze_exception(exc, {"operation": "config_reload"})
                            self.logger.exception("on_config_change failed")
            except HubError as exc:
                # e.g. the hub has no such tenant (yet): look again later
                self.logger.warning("config subscription failed", extra={"error_code": exc.code})
                await asyncio.sleep(self.config.register_max_delay)

    async def _deregister(self) -> None:
        """Remove this instance from the hub once; failures only cost the TTL."""
        reg = self.registration
        if reg is None or self._deregistered:
            return
        self._deregistered = True
        try:
            await self.client.deregister(self.config.service_name, reg.instance_id)
            self.logger.info("deregistered from the hub", extra={"instance_id": reg.instance_id})
        except NotFound:
            pass  # already gone (expired): the outcome we wanted
        except HubError as exc:
            # The hub will drop us when the TTL runs out; nothing more to do here.
            self.logger.warning("deregistration failed", extra={"error_code": exc.code})

    def _report_error(self, analysis: ErrorAnalysis) -> None:
        """ErrorDNA reporter: send the analysis to the hub without blocking the caller."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        coro = self.client.report_error(analysis)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._spawn(coro, "error-report")
        else:
            asyncio.run_coroutine_threadsafe(coro, loop)

    def _backup_declaration(self) -> dict[str, Any] | None:
        if self.backup_hook is None:
            return None
        return {
            "endpoint": self.config.backup_endpoint,
            "depends_on": list(self.config.backup_depends_on),
            "timeout_seconds": self.config.backup_timeout,
        }

    async def run_backup(self, request: BackupRequest) -> dict[str, Any]:
        """Run the backup hook for one request; the answer the hub records."""
        if self.backup_hook is None:
            raise NotFound("this service declares no backup")
        location = await self.backup_hook(request)
        self.backups.append(request)
        return {"backup_id": request.backup_id, "epoch": request.epoch, "location": location}

    # -- FastAPI integration -------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        """Add the health and Prometheus metrics routes, the standard error handlers
        (:class:`StandardResponse`: every error in the hub's shape), and a middleware that
        binds each request's tenant context (and a correlation id) for logs, hub calls and
        response envelopes, and times requests."""
        from fastapi.responses import JSONResponse, PlainTextResponse
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        async def health_route() -> JSONResponse:
            """The service's health; 503 unless running and registered (not ready while
            the hub does not know the instance; draining so probes agree)."""
            body = self.health()
            if self.database is not None:
                body["database"] = await self.database.health()
                if body["status"] == "healthy" and body["database"]["status"] != "healthy":
                    body["status"] = "database_unavailable"  # serving, but not ready
            return JSONResponse(body, status_code=200 if body["status"] == "healthy" else 503)

        async def metrics_route() -> PlainTextResponse:
            # The tracker's registry: the process-wide one unless the service injected its own.
            """Prometheus text exposition of the service's metrics."""
            return PlainTextResponse(
                generate_latest(self.tracker.registry), media_type=CONTENT_TYPE_LATEST
            )

        app.add_api_route(
            self.config.health_endpoint, health_route, methods=["GET"], include_in_schema=False
        )
        app.add_api_route(
            self.config.metrics_endpoint, metrics_route, methods=["GET"], include_in_schema=False
        )
        self.responses.install(app)
        if self.backup_hook is not None:

            async def backup_route(request: Request) -> JSONResponse:
                """The hub's system-wide backup call: run the hook, report the location."""
                try:
                    body = await request.json()
                    backup = BackupRequest(
                        backup_id=str(body["backup_id"]),
                        epoch=int(body["epoch"]),
                        service=str(body.get("service") or self.config.service_name),
                    )
                except (ValueError, KeyError, TypeError):
                    error = {"code": "invalid_request", "message": "expected backup_id, epoch"}
                    return JSONResponse({"error": error}, status_code=422)
                try:
                    return JSONResponse(await self.run_backup(backup))
                except Exception as exc:  # the hub records the failure with this reason
                    self.logger.exception("backup %s failed", backup.backup_id)
                    error = {"code": "backup_failed", "message": str(exc)[:300]}
                    return JSONResponse({"error": error}, status_code=500)

            from fastapi import Request as RequestClass

            # Annotations are strings here (postponed evaluation) and Request is imported
            # only for type checking: hand FastAPI the class itself.
            backup_route.__annotations__ = {"request": RequestClass, "return": JSONResponse}
            app.add_api_route(
                self.config.backup_endpoint,
                backup_route,
                methods=["POST"],
                include_in_schema=False,
            )

        @app.middleware("http")
        async def tenant_context_middleware(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            """Bind the request's tenant context and correlation id; time the route."""
            ctx = TenantContext.from_headers(request.headers)
            if ctx.correlation_id is None:
                ctx = replace(ctx, correlation_id=new_correlation_id())
            token = bind_tenant(ctx)
            start = time.perf_counter()
            succeeded = False
            try:
                response = await call_next(request)
                succeeded = response.status_code < 500
            finally:
                reset_tenant(token)
                # Label by route template, not raw path, to keep the label set bounded.
                route = getattr(request.scope.get("route"), "path", "unmatched")
                self.tracker.record(
                    f"{request.method} {route}", time.perf_counter() - start, success=succeeded
                )
            assert ctx.correlation_id is not None
            response.headers.setdefault(HEADER_CORRELATION_ID, ctx.correlation_id)
            return response

    def create_app(self, **fastapi_kwargs: Any) -> FastAPI:
        """A FastAPI app whose lifespan runs this service's life cycle, with /health.

        Routes answer in the standard envelope (``{"data", "meta"}``, see
        :class:`StandardResponse`) unless ``default_response_class`` says otherwise;
        a route may return ``JSONResponse`` itself to answer unwrapped."""
        from fastapi import FastAPI

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            """The app's life span is the service's life cycle."""
            async with self.running():
                yield

        fastapi_kwargs.setdefault("title", self.config.service_name)
        fastapi_kwargs.setdefault("version", self.config.version)
        fastapi_kwargs.setdefault("default_response_class", self.responses.response_class)
        app = FastAPI(lifespan=lifespan, **fastapi_kwargs)
        self.install(app)
        return app

    def run(self, app: FastAPI | None = None, *, log_level: str = "info") -> None:
        """Serve ``app`` (default :meth:`create_app`) with uvicorn on the configured port.

        SIGTERM/SIGINT deregister first, drain, and only then let uvicorn stop accepting.
        """
        import uvicorn

        service = self
        target = app if app is not None else self.create_app()

        class GracefulServer(uvicorn.Server):
            """uvicorn, but the first exit signal deregisters before the listeners close."""

            draining = False

            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                """First signal: deregister and drain, then exit; a second one exits now."""
                loop = service._loop
                if self.draining or loop is None or loop.is_closed():
                    super().handle_exit(sig, frame)
                    return
                self.draining = True
                loop.call_soon_threadsafe(lambda: loop.create_task(self._drain(sig, frame)))

            async def _drain(self, sig: int, frame: FrameType | None) -> None:
                """Deregister and drain (bounded), then hand over to uvicorn's shutdown."""
                try:
                    await asyncio.wait_for(
                        service.begin_shutdown(), timeout=service.config.drain_seconds + 10
                    )
                except Exception:
                    log.warning("graceful deregistration did not finish", exc_info=True)
                finally:
                    uvicorn.Server.handle_exit(self, sig, frame)

        config = uvicorn.Config(
            target,
            host=self.config.host,
            port=self.config.port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            # With JSON logging configured, uvicorn's lines go through it too instead of
            # uvicorn's own plain-text handlers.
            log_config=None if json_logging_configured() else uvicorn.config.LOGGING_CONFIG,
        )
        GracefulServer(config).run()
