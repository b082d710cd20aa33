"""Config push and quotas through HubClient/AsyncHubClient against a real hub process:
long polling, server-sent events (with resume), versioned writes, quota accounting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shared.client import AsyncHubClient, ConfigSnapshot, HubClient
from shared.errors import PreconditionFailed, QuotaExceeded, RateLimited, Unauthorized
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow

HubFactory = Callable[..., HubProcess]
TENANT = "company_abc"


@pytest.fixture
def hub(hub_processes: HubFactory, tmp_path: Path) -> HubProcess:
    hub = hub_processes(args=["--data-dir", str(tmp_path / "data")]).start()
    with hub.client() as admin:
        created = admin.post("/tenants", json={"tenant_id": TENANT, "subscription_tier": "pro"})
        assert created.status_code == 201, created.text
    return hub


@pytest.fixture
async def aclient(hub: HubProcess) -> AsyncIterator[AsyncHubClient]:
    async with AsyncHubClient(hub.url, token=TEST_ADMIN_TOKEN) as client:
        yield client


async def test_get_config_has_the_specs_shape(aclient: AsyncHubClient) -> None:
    snapshot = await aclient.get_config(TENANT)
    assert snapshot.tenant_id == TENANT
    assert snapshot.subscription_tier == "pro"
    assert snapshot.config["rate_limits"]["api_calls_per_hour"] == 10_000  # pro defaults
    assert snapshot.config["features"]["advanced_ai"] is True
    assert snapshot.version > 0
    global_layer = await aclient.get_config(None)
    assert global_layer.tenant_id is None
    assert global_layer.raw["scope"] == "global"


async def test_long_poll_returns_on_a_change(aclient: AsyncHubClient) -> None:
    first = await aclient.get_config(TENANT)
    # nothing changes: the blocking read returns the same version when ``wait`` runs out
    unchanged = await aclient.get_config(TENANT, index=first.version, wait=1)
    assert unchanged.version == first.version

    async def change_soon() -> None:
        await asyncio.sleep(0.3)
        await aclient.update_tenant_config(TENANT, {"rate_limits": {"api_calls_per_hour": 777}})

    writer = asyncio.create_task(change_soon())
    changed = await aclient.get_config(TENANT, index=first.version, wait=30)
    await writer
    assert changed.version > first.version
    assert changed.config["rate_limits"]["api_calls_per_hour"] == 777


async def test_watch_config_yields_each_new_version(aclient: AsyncHubClient) -> None:
    seen: list[ConfigSnapshot] = []
    stream = aclient.watch_config(TENANT, wait=10)

    async def consume() -> None:
        async for snapshot in stream:
            seen.append(snapshot)
            if len(seen) == 3:
                return

    consumer = asyncio.create_task(consume())
    await eventually(lambda: len(seen) == 1)
    await aclient.update_tenant_config(TENANT, {"features": {"custom_models": True}})
    await eventually(lambda: len(seen) == 2)
    await aclient.update_global_config({"maintenance": {"window": "sun-02:00"}})
    await asyncio.wait_for(consumer, 30)
    await stream.aclose()
    versions = [s.version for s in seen]
    assert versions == sorted(set(versions))  # each version once, in order
    assert seen[1].config["features"]["custom_models"] is True
    assert seen[2].config["maintenance"] == {"window": "sun-02:00"}  # global layer merged in


async def test_server_sent_events_push_and_resume(aclient: AsyncHubClient) -> None:
    received: list[ConfigSnapshot] = []

    async def listen() -> None:
        async for snapshot in aclient.stream_config(TENANT):
            received.append(snapshot)
            if len(received) == 2:
                return

    listener = asyncio.create_task(listen())
    await eventually(lambda: len(received) == 1)  # the current version comes first
    await aclient.update_tenant_config(TENANT, {"rate_limits": {"websocket_connections": 9}})
    await asyncio.wait_for(listener, 30)
    assert received[1].config["rate_limits"]["websocket_connections"] == 9

    # a change while nobody listens is delivered on resume from the last version seen
    await aclient.update_tenant_config(TENANT, {"rate_limits": {"websocket_connections": 11}})
    resumed: list[ConfigSnapshot] = []
    async for snapshot in aclient.stream_config(TENANT, last_event_id=received[1].version):
        resumed.append(snapshot)
        break
    assert resumed[0].version > received[1].version
    assert resumed[0].config["rate_limits"]["websocket_connections"] == 11


async def test_writes_are_versioned(aclient: AsyncHubClient) -> None:
    before = await aclient.get_config(TENANT)
    await aclient.update_tenant_config(TENANT, {"rate_limits": {"api_calls_per_hour": 5}})
    with pytest.raises(PreconditionFailed):
        await aclient.update_tenant_config(
            TENANT, {"rate_limits": {"api_calls_per_hour": 6}}, if_match=before.version
        )
    current = await aclient.get_config(TENANT)
    assert current.config["rate_limits"]["api_calls_per_hour"] == 5
    await aclient.update_tenant_config(
        TENANT, {"rate_limits": {"api_calls_per_hour": 6}}, if_match=current.version
    )
    assert (await aclient.get_config(TENANT)).config["rate_limits"]["api_calls_per_hour"] == 6


def test_sync_client_watches_and_streams(hub: HubProcess) -> None:
    with HubClient(hub.url, token=TEST_ADMIN_TOKEN) as client:
        stop = threading.Event()
        seen: list[ConfigSnapshot] = []

        def watch() -> None:
            for snapshot in client.watch_config(TENANT, wait=1, stop=stop):
                seen.append(snapshot)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            wait_until(lambda: len(seen) == 1)
            client.update_tenant_config(TENANT, {"features": {"basic_analytics": False}})
            wait_until(lambda: len(seen) == 2)
        finally:
            stop.set()
            watcher.join(15)
        assert not watcher.is_alive()
        assert seen[1].config["features"]["basic_analytics"] is False

        first = next(iter(client.stream_config(TENANT)))
        assert first.version == seen[1].version


async def test_quota_check_allocate_release(aclient: AsyncHubClient) -> None:
    await aclient.update_tenant_config(TENANT, {"rate_limits": {"websocket_connections": 3}})
    check = await aclient.check_quota(TENANT, "websocket_connections", 2)
    assert check["allowed"] is True
    await aclient.allocate_quota(TENANT, "websocket_connections", 2)
    with pytest.raises(QuotaExceeded) as exceeded:
        await aclient.allocate_quota(TENANT, "websocket_connections", 2)
    assert exceeded.value.details["http_status"] == 429
    await aclient.release_quota(TENANT, "websocket_connections", 2)
    await aclient.allocate_quota(TENANT, "websocket_connections", 3)


async def test_writes_need_a_token(hub: HubProcess) -> None:
    async with AsyncHubClient(hub.url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.update_global_config({"x": {"y": 1}})


async def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.05)


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Blocking twin of :func:`eventually`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s")
        time.sleep(0.05)


async def test_the_specs_per_tier_global_update_sets_each_tiers_limit(
    hub: HubProcess, aclient: AsyncHubClient
) -> None:
    """The spec's ``update_global_config`` example, verbatim, through the shared client:
    each tier's tenants get their tier's ``api_calls_per_hour``, and the limiter enforces it."""
    with hub.client() as admin:
        for tenant_id, tier in (("spec_free", "free"), ("spec_ent", "enterprise")):
            created = admin.post(
                "/tenants", json={"tenant_id": tenant_id, "subscription_tier": tier}
            )
            assert created.status_code == 201, created.text
        issued = admin.post(
            "/tokens", json={"role": "tenant", "name": "free tenant", "tenant_id": "spec_free"}
        )
        assert issued.status_code == 201, issued.text
        free_token = issued.json()["token"]

    # Push config update to all services (the spec's Dynamic Configuration example)
    await aclient.update_global_config(
        {
            "rate_limits": {
                "free_tier": 50,
                "pro_tier": 200,
                "enterprise_tier": 1000,
            }
        }
    )

    for tenant_id, tier, limit in (
        ("spec_free", "free", 50),
        (TENANT, "pro", 200),
        ("spec_ent", "enterprise", 1000),
    ):
        snapshot = await aclient.get_config(tenant_id)
        assert snapshot.subscription_tier == tier
        rate_limits = snapshot.config["rate_limits"]
        assert rate_limits["api_calls_per_hour"] == limit, (tenant_id, rate_limits)
        assert not {"free_tier", "pro_tier", "enterprise_tier"} & set(rate_limits)
    tier_layer = (await aclient.get_config(None)).raw
    assert "free_tier" not in tier_layer["config"].get("rate_limits", {})

    # The free tenant's own token: a burst of at least one call, then 429 at 50 per hour.
    async with AsyncHubClient(hub.url, token=free_token) as tenant_client:
        refused = None
        for _ in range(20):
            try:
                await tenant_client.get_config("spec_free")
            except RateLimited as exc:
                refused = exc
                break
        assert refused is not None, "a 50-per-hour tenant made 20 calls without a 429"
        assert refused.details["limit_per_hour"] == 50
