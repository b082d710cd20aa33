"""HubClient and AsyncHubClient against the real hub (a process, or the app in-process)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format

from facade import HubSettings, create_app
from proto.hub import registry_pb2
from shared.client import AsyncHubClient, HubClient, RetryPolicy
from shared.errors import (
    HubUnavailable,
    InstanceNotFound,
    InvalidRequest,
    NotFound,
    ServiceNotFound,
    TierNotAllowed,
)
from shared.logs import log_context
from shared.tenancy import TenantContext
from tests.conftest import free_port
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

HubFactory = Callable[..., HubProcess]

FREE = TenantContext(tenant_id="company_free", tier="free")
PRO = TenantContext(tenant_id="company_abc", tier="pro", user_id="user123")


@pytest.fixture
def hub(hub_processes: HubFactory, tmp_path: Path) -> HubProcess:
    # Probing off: the instances registered here are addresses nobody listens on.
    return hub_processes(
        args=["--data-dir", str(tmp_path / "data")], env={"HUB_PROBING": "false"}
    ).start()


@pytest.fixture
def sent_headers() -> list[httpx.Headers]:
    return []


@pytest.fixture
def client(hub: HubProcess, sent_headers: list[httpx.Headers]) -> Iterator[HubClient]:
    """A sync client whose HTTP client records the headers of each request it sends."""
    http = httpx.Client(
        base_url=hub.url,
        timeout=5.0,
        event_hooks={"request": [lambda request: sent_headers.append(request.headers)]},
    )
    delays: list[float] = []
    with HubClient(
        http_client=http,
        service_name="trading-engine",
        sleep=delays.append,
        token=TEST_ADMIN_TOKEN,
    ) as hub_client:
        hub_client.recorded_delays = delays  # type: ignore[attr-defined]
        yield hub_client
    http.close()


@pytest.mark.slow
def test_register_discover_heartbeat_deregister(client: HubClient) -> None:
    reg = client.register(
        "risk-management", "127.0.0.1", 8011, version="1.2.0", tags=["risk"], ttl=30
    )
    assert reg.service_name == "risk-management"
    assert reg.created
    assert reg.ttl == 30
    again = client.register(
        "risk-management", "127.0.0.1", 8011, version="1.2.0", tags=["risk"], ttl=30
    )
    assert again.instance_id == reg.instance_id
    assert not again.created

    found = client.discover("risk-management")
    assert found.recommended_endpoint == "http://127.0.0.1:8011"
    assert found.all_healthy_endpoints == ["http://127.0.0.1:8011"]
    assert found.connection_type == "direct_call"
    assert not found.stale
    assert not found.from_cache

    beat = client.heartbeat("risk-management", reg.instance_id, load=0.3)
    assert beat["instance_id"] == reg.instance_id
    described = client.get_service("risk-management")
    assert described["instances"][0]["load"] == pytest.approx(0.3)

    assert "risk-management" in client.list_services()["services"]
    client.deregister("risk-management", reg.instance_id)
    with pytest.raises(ServiceNotFound) as missing:
        client.discover("risk-management")
    assert missing.value.details["http_status"] == 404
    with pytest.raises(InstanceNotFound):
        client.heartbeat("risk-management", reg.instance_id)


@pytest.mark.slow
def test_tenant_tier_filtering_and_typed_errors(client: HubClient) -> None:
    client.register(
        "trading-engine", "127.0.0.1", 8007, subscription_requirements=["pro", "enterprise"]
    )
    client.register("market-data", "127.0.0.1", 8001)

    with pytest.raises(TierNotAllowed) as denied:
        client.discover("trading-engine", tenant=FREE)
    assert denied.value.code == "tier_not_allowed"
    assert client.discover("trading-engine", tenant=PRO).recommended_endpoint

    free_view = client.list_services(tenant=FREE)["services"]
    assert set(free_view) == {"market-data"}
    assert set(client.list_services(tenant=FREE, legacy_mode=True)["services"]) == {
        "market-data",
        "trading-engine",
    }
    with pytest.raises(InvalidRequest):
        client.register("Bad Name!", "127.0.0.1", 1)


@pytest.mark.slow
def test_tenant_and_correlation_headers_are_propagated(
    client: HubClient, sent_headers: list[httpx.Headers]
) -> None:
    client.register("market-data", "127.0.0.1", 8001)
    sent_headers.clear()
    client.discover("market-data", tenant=PRO)
    with log_context(TenantContext(tenant_id="from-context", correlation_id="req_456")):
        client.discover("market-data")
        client.core.forward_ambient_tenant = True  # what a gateway's client does
        client.discover("market-data")
    explicit, correlated, ambient = sent_headers
    assert explicit["x-tenant-id"] == "company_abc"
    assert explicit["x-subscription-tier"] == "pro"
    assert explicit["x-user-id"] == "user123"
    assert len(explicit["x-correlation-id"]) == 32  # a fresh id when none is in context
    # By default only the correlation id of the ambient context travels ...
    assert "x-tenant-id" not in correlated
    assert correlated["x-correlation-id"] == "req_456"
    # ... and a gateway's client also forwards the tenant it acts for.
    assert ambient["x-tenant-id"] == "from-context"
    assert ambient["x-correlation-id"] == "req_456"
    assert "trading-engine" in explicit["user-agent"]


@pytest.mark.slow
def test_last_good_discovery_is_served_stale_when_the_hub_is_gone(
    client: HubClient, hub: HubProcess
) -> None:
    client.register("market-data", "127.0.0.1", 8001)
    fresh = client.discover("market-data", tenant=PRO)
    client.list_services(tenant=PRO)
    hub.stop()

    stale = client.discover("market-data", tenant=PRO)
    assert stale.stale
    assert stale.from_cache
    assert stale.recommended_endpoint == fresh.recommended_endpoint
    assert stale.fetched_at == fresh.fetched_at
    listed = client.list_services(tenant=PRO)
    assert listed["stale"] is True
    assert "market-data" in listed["services"]

    # the cache is per tenant context: another tenant never gets this tenant's answer
    with pytest.raises(HubUnavailable) as unreachable:
        client.discover("market-data", tenant=FREE)
    assert unreachable.value.details["attempts"] == 3
    # and writes are never "served from cache"
    with pytest.raises(HubUnavailable):
        client.register("market-data", "127.0.0.1", 8002)


def test_retries_are_bounded_with_growing_jittered_backoff() -> None:
    delays: list[float] = []
    policy = RetryPolicy(attempts=4, base_delay=0.2, max_delay=0.5)
    # a loopback port nothing listens on: every attempt is refused at connect time
    client = HubClient(f"http://127.0.0.1:{free_port()}", retry=policy, sleep=delays.append)
    with client, pytest.raises(HubUnavailable) as err:
        client.health()
    assert err.value.details["attempts"] == 4
    assert len(delays) == 3
    caps = [0.2, 0.4, 0.5]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap


# --- the async client, against the hub app in-process --------------------------------


@pytest.fixture
async def async_client(tmp_path: Path) -> AsyncIterator[AsyncHubClient]:
    app = create_app(
        HubSettings(data_dir=tmp_path / "data", admin_token=TEST_ADMIN_TOKEN, probing=False)
    )
    hub = app.state.hub
    await hub.start()
    try:
        async with AsyncHubClient(
            "http://hub.test", transport=httpx.ASGITransport(app=app), token=TEST_ADMIN_TOKEN
        ) as client:
            yield client
    finally:
        await hub.stop()


async def test_async_client_full_cycle(async_client: AsyncHubClient) -> None:
    reg = await async_client.register(
        "ml-processing", "127.0.0.1", 8020, subscription_requirements=["enterprise"], ttl=60
    )
    with pytest.raises(TierNotAllowed):
        await async_client.discover("ml-processing", tenant=PRO)
    enterprise = TenantContext(tenant_id="bigcorp", tier="enterprise")
    found = await async_client.discover("ml-processing", tenant=enterprise)
    assert found.recommended_endpoint == "http://127.0.0.1:8020"
    assert found.confidence["http://127.0.0.1:8020"] > 0
    # the hub's JSON answer is the proto DiscoveryAnswer of proto/hub/registry.proto
    answer = json_format.ParseDict(
        found.raw, registry_pb2.DiscoveryAnswer(), ignore_unknown_fields=True
    )
    assert answer.recommended_endpoint == found.recommended_endpoint
    assert dict(answer.confidence) == found.confidence
    await async_client.heartbeat("ml-processing", reg.instance_id, load=0.9)
    health = await async_client.health()
    assert health["status"] in {"healthy", "degraded"}
    await async_client.deregister("ml-processing", reg.instance_id)
    with pytest.raises(NotFound):
        await async_client.deregister("ml-processing", reg.instance_id)


@pytest.mark.slow
def test_expired_instance_heartbeat_says_register_again(client: HubClient) -> None:
    reg = client.register("short-lived", "127.0.0.1", 8030, ttl=1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            client.get_service("short-lived")
        except ServiceNotFound:
            break
        time.sleep(0.2)
    else:
        pytest.fail("instance with ttl=1 never expired")
    with pytest.raises(NotFound) as expired:
        client.heartbeat("short-lived", reg.instance_id)
    assert expired.value.code in {"instance_not_found", "lease_not_found"}


@pytest.mark.slow
def test_cache_ttl_answers_discovery_without_a_round_trip(
    client: HubClient, sent_headers: list[httpx.Headers]
) -> None:
    client.register("market-data", "127.0.0.1", 8001)
    now = [1000.0]
    client.core.cache_ttl = 30
    client.core.monotonic = lambda: now[0]
    sent_headers.clear()

    first = client.discover("market-data", tenant=PRO)
    second = client.discover("market-data", tenant=PRO)
    assert len(sent_headers) == 1
    assert not first.from_cache
    assert second.from_cache
    assert not second.stale
    assert second.recommended_endpoint == first.recommended_endpoint

    client.discover("market-data", tenant=FREE)  # another tenant: its own answer
    assert len(sent_headers) == 2
    now[0] += 31
    assert not client.discover("market-data", tenant=PRO).from_cache
    assert len(sent_headers) == 3
