"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from adapters import Backend
from facade.access.audit import AuditMiddleware
from facade.coordination.maintenance import ReadOnlyGuard
from facade.errors import RequestLimits, install_error_handlers
from facade.routers import (
    admin,
    backups,
    circuits,
    config_ws,
    deployments,
    monitoring,
    services,
    system_backups,
    tenants,
    workflows,
)
from facade.routers import config as config_routes
from facade.routers import error_reports as error_routes
from facade.routers import health as health_routes
from facade.routers import hub as hub_routes
from facade.routers import maintenance as maintenance_routes
from facade.routers import telemetry as telemetry_routes
from facade.runtime import Hub
from facade.settings import HubSettings, load_settings


def create_app(settings: HubSettings | None = None, *, backend: Backend | None = None) -> FastAPI:
    """Build the hub's app; settings come from the environment unless given.

    ``backend`` injects an already opened backend instead of the configured one; the
    caller keeps ownership and closes it.
    """
    settings = settings or load_settings()
    hub = Hub(settings, backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(
        title="Central Hub",
        version="0.1.0",
        description="Service registration, health and tenant-aware discovery. "
        "The hub coordinates; callers call the endpoints it returns directly.",
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(ReadOnlyGuard, mode=hub.maintenance)  # inside the limits and audit
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_json_depth=settings.max_json_depth,
        path_body_limits={"/telemetry": settings.telemetry_max_body_bytes},
    )
    app.add_middleware(AuditMiddleware)  # outermost: refused requests are audited too
    app.include_router(hub_routes.router)
    app.include_router(services.router)
    app.include_router(health_routes.router)
    app.include_router(circuits.router)
    app.include_router(tenants.router)
    app.include_router(config_routes.router)
    app.include_router(config_ws.router)
    app.include_router(monitoring.router)
    app.include_router(error_routes.router)
    app.include_router(admin.router)
    app.include_router(backups.router)
    app.include_router(system_backups.router)
    app.include_router(workflows.router)
    app.include_router(deployments.router)
    app.include_router(telemetry_routes.router)
    app.include_router(maintenance_routes.router)
    return app
