"""BaseService against the real hub: registration, heartbeats, re-registration, health,
tenant context middleware and deregistration on stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from facade import HubSettings, create_app
from shared.base_service import BaseService, ServiceConfig
from shared.client import AsyncHubClient, ConfigSnapshot, HubClient, RetryPolicy
from shared.errors import ServiceNotFound
from shared.logs import current_tenant_context
from tests.conftest import free_port
from tests.processes import TEST_ADMIN_TOKEN, HubProcess


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``check`` until it holds; bounded, fails the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"condition not reached within {timeout}s")


@pytest.fixture
async def hub_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(HubSettings(data_dir=tmp_path / "hub", admin_token=TEST_ADMIN_TOKEN))
    await app.state.hub.start()
    try:
        yield app
    finally:
        await app.state.hub.stop()


def client_for(app: FastAPI) -> AsyncHubClient:
    return AsyncHubClient(
        "http://hub.test", transport=httpx.ASGITransport(app=app), token=TEST_ADMIN_TOKEN
    )


class PricingService(BaseService):
    """A service reporting a fixed load, to see it arrive at the hub."""

    def current_load(self) -> float:
        return 0.42


def pricing_config(**overrides: Any) -> ServiceConfig:
    values: dict[str, Any] = {
        "service_name": "pricing",
        "version": "3.1.0",
        "port": 9301,
        "ttl": 5,
        "heartbeat_interval": 0.05,
        "register_max_delay": 0.2,
        "report_errors": False,
        "tags": ("fx",),
        # nothing listens on the port: the hub checks the instance by its heartbeats
        "health_check": {"kind": "ttl"},
        **overrides,
    }
    return ServiceConfig(**values)


async def test_registers_heartbeats_reregisters_and_deregisters(hub_app: FastAPI) -> None:
    observer = client_for(hub_app)
    service = PricingService(
        pricing_config(), client=client_for(hub_app), metrics_registry=CollectorRegistry()
    )
    await service.start()
    reg = await service.wait_registered(10)
    assert reg.service_name == "pricing"

    described = await observer.get_service("pricing")
    (instance,) = described["instances"]
    assert instance["version"] == "3.1.0"
    assert instance["tags"] == ["fx"]
    assert instance["meta"]["environment"] == "development"
    assert instance["check"]["kind"] == "ttl"  # ServiceConfig.health_check reached the hub

    async def load_reported() -> bool:
        (inst,) = (await observer.get_service("pricing"))["instances"]
        return bool(inst["load"] == pytest.approx(0.42))

    await eventually(load_reported)

    # the hub forgets the instance (as after a missed TTL): the next heartbeat re-registers
    await observer.deregister("pricing", reg.instance_id)

    async def registered_again() -> bool:
        try:
            return (await observer.discover("pricing")).recommended_endpoint is not None
        except ServiceNotFound:
            return False

    await eventually(registered_again)

    # The hub may show the instance a moment before the service has read its answer.
    async def service_knows_it() -> bool:
        return service.health()["registered"] is True

    await eventually(service_knows_it)

    await service.stop()
    assert service.state == "stopped"
    with pytest.raises(ServiceNotFound):
        await observer.discover("pricing")
    await service.client.aclose()
    await observer.aclose()


@pytest.mark.slow
async def test_keeps_trying_until_the_hub_appears(tmp_path: Path) -> None:
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    service = PricingService(
        pricing_config(
            hub_url=hub_url, hub_token=TEST_ADMIN_TOKEN, hub_retry=RetryPolicy(attempts=1)
        ),
        metrics_registry=CollectorRegistry(),
    )
    await service.start()
    await asyncio.sleep(0.5)  # several refused attempts, nothing listening yet
    assert not service.registered.is_set()
    # Serving, but not ready: a load balancer must not send it work it cannot report.
    assert service.health()["status"] == "unregistered"

    hub = HubProcess(tmp_path, port=port, args=["--data-dir", str(tmp_path / "data")])
    try:
        await asyncio.to_thread(hub.start)
        await service.wait_registered(30)
        assert service.health()["status"] == "healthy"
        with HubClient(hub_url, token=TEST_ADMIN_TOKEN) as sync_client:
            assert sync_client.discover("pricing").all_healthy_endpoints == [
                "http://127.0.0.1:9301"
            ]
            await service.stop()
            with pytest.raises(ServiceNotFound):
                sync_client.discover("pricing")
    finally:
        await asyncio.to_thread(hub.stop)


async def test_health_route_is_not_ready_while_unregistered() -> None:
    # Nothing listens on this port: the registration keeps failing.
    service = PricingService(
        pricing_config(
            hub_url=f"http://127.0.0.1:{free_port()}",
            hub_token=TEST_ADMIN_TOKEN,
            hub_retry=RetryPolicy(attempts=1),
        ),
        metrics_registry=CollectorRegistry(),
    )
    app = service.create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        service.running(),
        httpx.AsyncClient(transport=transport, base_url="http://svc.test") as http,
    ):
        health = await http.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unregistered"
        assert health.json()["registered"] is False


async def test_health_route_and_tenant_middleware(hub_app: FastAPI) -> None:
    service = PricingService(
        pricing_config(), client=client_for(hub_app), metrics_registry=CollectorRegistry()
    )
    app = service.create_app()

    @app.get("/whoami/{user}")
    async def whoami(user: str) -> dict[str, Any]:
        ctx = current_tenant_context()
        assert ctx is not None
        return {"tenant_id": ctx.tenant_id, "tier": ctx.tier, "correlation_id": ctx.correlation_id}

    transport = httpx.ASGITransport(app=app)
    async with (
        service.running(),
        httpx.AsyncClient(transport=transport, base_url="http://svc.test") as http,
    ):
        await service.wait_registered(10)
        health = await http.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        assert health.json()["instance_id"] == service.instance_id

        who = await http.get(
            "/whoami/u1",
            headers={"x-tenant-id": "company_abc", "x-subscription-tier": "pro"},
        )
        data, meta = who.json()["data"], who.json()["meta"]  # the StandardResponse envelope
        assert data["tenant_id"] == meta["tenant_id"] == "company_abc"
        assert data["tier"] == "pro"
        assert meta["service"] == service.config.service_name
        # a correlation id is made up when the caller sent none, and echoed back
        assert who.headers["x-correlation-id"] == data["correlation_id"] == meta["correlation_id"]
        echoed = await http.get("/whoami/u2", headers={"x-correlation-id": "req_456"})
        assert echoed.headers["x-correlation-id"] == "req_456"
        assert service.tracker.stats("GET /whoami/{user}").count == 2
        metrics = await http.get("/metrics")
        assert 'operation="GET /whoami/{user}"' in metrics.text
        assert metrics.headers["content-type"].startswith("text/plain")

        await service.begin_shutdown()
        draining = await http.get("/health")
        assert draining.status_code == 503
        assert draining.json()["status"] == "draining"
        assert draining.json()["registered"] is False
    await service.client.aclose()


class ReloadingService(BaseService):
    """Records every configuration it is handed; fails on one of them on purpose."""

    def __init__(self, config: ServiceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.applied: list[dict[str, Any]] = []

    async def on_config_change(self, snapshot: ConfigSnapshot) -> None:
        limits = snapshot.config.get("rate_limits", {})
        if limits.get("api_calls_per_hour") == 13:
            raise ValueError("refusing an unlucky limit of 13")
        self.applied.append(limits)


async def test_config_changes_are_hot_reloaded(hub_app: FastAPI) -> None:
    admin = client_for(hub_app)
    created = await admin.http.post(
        "/tenants",
        json={"tenant_id": "company_abc", "subscription_tier": "pro"},
        headers={"authorization": f"Bearer {TEST_ADMIN_TOKEN}"},
    )
    assert created.status_code == 201, created.text
    service = ReloadingService(
        pricing_config(config_tenant_id="company_abc", config_wait=5),
        client=client_for(hub_app),
        metrics_registry=CollectorRegistry(),
    )
    async with service.running():

        async def applied(count: int) -> bool:
            return len(service.applied) >= count

        await eventually(lambda: applied(1))
        assert service.applied[0]["api_calls_per_hour"] == 10_000  # the pro tier default

        await admin.update_tenant_config("company_abc", {"rate_limits": {"api_calls_per_hour": 13}})

        async def hook_failed() -> bool:
            return any(g.error_type == "ValueError" for g in service.error_dna.groups())

        await eventually(hook_failed)
        await admin.update_tenant_config("company_abc", {"rate_limits": {"api_calls_per_hour": 50}})

        async def reached_50() -> bool:
            return bool(service.applied) and service.applied[-1]["api_calls_per_hour"] == 50

        await eventually(reached_50)
        assert service.health()["config_version"] == service.config_snapshot.version  # type: ignore[union-attr]
        # a hook that raises is recorded by ErrorDNA and does not stop the subscription
        (group,) = [g for g in service.error_dna.groups() if g.error_type == "ValueError"]
        assert "unlucky" in group.sample_message
    await service.client.aclose()
    await admin.aclose()


async def test_every_shutdown_caller_waits_for_the_deregistration(hub_app: FastAPI) -> None:
    observer = client_for(hub_app)
    service = PricingService(
        pricing_config(drain_seconds=0.2),
        client=client_for(hub_app),
        metrics_registry=CollectorRegistry(),
    )
    await service.start()
    await service.wait_registered(10)
    # e.g. the SIGTERM handler and the lifespan shutdown at once
    callers = {asyncio.ensure_future(service.begin_shutdown()) for _ in range(2)}
    _first, pending = await asyncio.wait(callers, return_when=asyncio.FIRST_COMPLETED)
    with pytest.raises(ServiceNotFound):
        await observer.discover("pricing")  # whoever returned first, we are gone already
    await asyncio.gather(*pending)
    assert service.health()["status"] == "draining"
    await service.stop()
    assert service.state == "stopped"
    await service.start()  # a stopped service does not come back to life
    assert service.state == "stopped"
    await service.client.aclose()
    await observer.aclose()
