"""Tenants, layered config, versions, push and quotas through the API, over every backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from facade import HubSettings, create_app
from facade.runtime import Hub
from facade.tenancy.webhooks import verify
from tests.conformance.conftest import ADMIN_TOKEN, assert_error
from tests.conftest import BackendFactory
from tests.http_helpers import SSEEvent, WebhookReceiver, read_events, serve

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class ConfigHub:
    """A started hub (fast webhook retries) with an in-process client and a real URL."""

    app: FastAPI
    hub: Hub
    api: httpx.AsyncClient
    url: str

    def client_with(self, token: str | None) -> httpx.AsyncClient:
        """Another in-process client to the same hub, with ``token`` (or none)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=headers)

    async def issue(self, role: str, **extra: object) -> str:
        """A fresh token of ``role``, issued through the API."""
        resp = await self.api.post("/tokens", json={"role": role, "name": role, **extra})
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["token"]
        return token


@pytest.fixture
async def config_hub(backend_factory: BackendFactory, tmp_path: Path) -> AsyncIterator[ConfigHub]:
    backend = await backend_factory()
    settings = HubSettings(
        data_dir=tmp_path / "unused",
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        webhook_initial_backoff=0.05,
        webhook_max_backoff=0.2,
        webhook_max_attempts=4,
        webhook_timeout=2.0,
        config_keepalive=0.5,
    )
    app = create_app(settings, backend=backend)
    hub: Hub = app.state.hub
    # Deliveries must follow from change notifications alone, not the periodic rescan
    # (which only exists to pick up claims abandoned by a dead replica).
    hub.webhooks.rescan_interval = 3600
    await hub.start()
    try:
        async with serve(app) as url:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://hub.test", headers=ADMIN
            ) as api:
                yield ConfigHub(app, hub, api, url)
    finally:
        await hub.stop()


@pytest.fixture
def api(config_hub: ConfigHub) -> httpx.AsyncClient:
    return config_hub.api


async def provision(api: httpx.AsyncClient, tenant_id: str, tier: str = "pro") -> dict[str, Any]:
    resp = await api.post("/tenants", json={"tenant_id": tenant_id, "subscription_tier": tier})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def config_of(api: httpx.AsyncClient, tenant_id: str) -> dict[str, Any]:
    resp = await api.get(f"/config/{tenant_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert resp.headers["etag"] == f'"{body["version"]}"'
    assert resp.headers["x-hub-index"] == str(body["version"])
    return body


# -- tenants ---------------------------------------------------------------------------


async def test_tenant_lifecycle(api: httpx.AsyncClient) -> None:
    created = await provision(api, "company_abc", "pro")
    assert created["tenant_id"] == "company_abc"
    assert created["subscription_tier"] == "pro"
    assert created["company_id"] == "company_abc"
    assert created["version"] > 0
    # Readable at once (read-your-writes) in the list and by id.
    listed = (await api.get("/tenants")).json()
    assert [t["tenant_id"] for t in listed["tenants"]] == ["company_abc"]
    one = await api.get("/tenants/company_abc")
    assert one.json()["subscription_tier"] == "pro"
    assert one.headers["etag"] == f'"{created["version"]}"'

    assert_error(
        await api.post("/tenants", json={"tenant_id": "company_abc", "subscription_tier": "free"}),
        409,
        "tenant_exists",
    )
    # Changes are compare-and-set: an ETag from before another change is refused.
    renamed = await api.patch(
        "/tenants/company_abc",
        json={"company_id": "abc_holding"},
        headers={"If-Match": one.headers["etag"]},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["company_id"] == "abc_holding"
    stale = await api.patch(
        "/tenants/company_abc",
        json={"subscription_tier": "enterprise"},
        headers={"If-Match": one.headers["etag"]},
    )
    assert_error(stale, 412, "precondition_failed")
    assert (await api.get("/tenants/company_abc")).json()["subscription_tier"] == "pro"
    changed = await api.patch(
        "/tenants/company_abc",
        json={"subscription_tier": "enterprise"},
        headers={"If-Match": renamed.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["subscription_tier"] == "enterprise"
    assert (await api.get("/tenants/company_abc")).json()["subscription_tier"] == "enterprise"

    deleted = await api.delete("/tenants/company_abc")
    assert deleted.json() == {"deleted": True, "tenant_id": "company_abc"}
    assert_error(await api.get("/tenants/company_abc"), 404, "tenant_not_found")
    assert_error(await api.delete("/tenants/company_abc"), 404, "tenant_not_found")
    assert (await api.get("/tenants")).json()["count"] == 0


async def test_bad_tenant_input_is_4xx(api: httpx.AsyncClient) -> None:
    cases: list[dict[str, Any]] = [
        {"tenant_id": "abc", "subscription_tier": "platinum"},
        {"tenant_id": "bad id", "subscription_tier": "pro"},
        {"tenant_id": "watch", "subscription_tier": "pro"},
        {"tenant_id": "abc"},
        {"tenant_id": "abc", "subscription_tier": "pro", "extra": 1},
    ]
    for body in cases:
        assert_error(await api.post("/tenants", json=body), 422, "invalid_request")
    assert (await api.get("/tenants")).json()["count"] == 0
    await provision(api, "steady", "pro")
    assert_error(await api.patch("/tenants/steady", json={}), 422, "invalid_request")
    before = (await api.get("/tenants/steady")).json()["version"]
    same = await api.patch("/tenants/steady", json={"subscription_tier": "pro"})
    assert same.json()["version"] == before  # nothing changed: no new version
    assert_error(
        await api.patch("/tenants/nobody", json={"subscription_tier": "pro"}),
        404,
        "tenant_not_found",
    )


async def test_provisioned_tier_drives_discovery(api: httpx.AsyncClient) -> None:
    await provision(api, "tier_free", "free")
    reg = {
        "name": "risk",
        "host": "127.0.0.1",
        "port": 9001,
        "subscription_requirements": ["pro", "enterprise"],
    }
    assert (await api.post("/services/register", json=reg)).status_code == 201
    listed = (await api.get("/services/", headers={"x-tenant-id": "tier_free"})).json()
    assert "risk" not in listed["services"]
    await api.patch("/tenants/tier_free", json={"subscription_tier": "pro"})
    listed = (await api.get("/services/", headers={"x-tenant-id": "tier_free"})).json()
    assert "risk" in listed["services"]


# -- config layers ---------------------------------------------------------------------


async def test_tier_defaults_follow_the_spec(api: httpx.AsyncClient) -> None:
    await provision(api, "company_abc", "pro")
    body = await config_of(api, "company_abc")
    assert body["tenant_id"] == "company_abc"
    assert body["subscription_tier"] == "pro"
    assert body["config"]["rate_limits"] == {
        "api_calls_per_hour": 10000,
        "websocket_connections": 50,
    }
    assert body["config"]["features"] == {
        "basic_analytics": True,
        "advanced_ai": True,
        "custom_models": False,
    }
    assert body["config"]["resource_limits"] == {
        "max_concurrent_requests": 100,
        "max_data_storage_mb": 1000,
    }
    free = await provision(api, "small", "free")
    assert free["subscription_tier"] == "free"
    small = await config_of(api, "small")
    assert small["config"]["rate_limits"]["api_calls_per_hour"] == 1000
    assert small["config"]["features"]["advanced_ai"] is False
    # A tenant nobody provisioned: the tier its caller asserts (the spec's gateway flow).
    guest = (await api.get("/config/guest", headers={"x-subscription-tier": "enterprise"})).json()
    assert guest["provisioned"] is False
    assert guest["config"]["features"]["custom_models"] is True
    assert guest["config"]["rate_limits"]["api_calls_per_hour"] == 100000


async def test_layers_merge_and_every_write_is_a_version(api: httpx.AsyncClient) -> None:
    await provision(api, "company_abc", "pro")
    v0 = (await config_of(api, "company_abc"))["version"]

    # The spec's update_global_config, plus an unknown section kept as given.
    resp = await api.put(
        "/config",
        json={
            "rate_limits": {"free_tier": 50, "pro_tier": 200, "enterprise_tier": 1000},
            "maintenance": {"window": "sun 02:00", "regions": ["eu", "us"]},
        },
        headers={"x-user-id": "ops-alice"},
    )
    assert resp.status_code == 200, resp.text
    written = resp.json()
    global_version = written["version"]
    assert global_version > v0
    # The per-tier values went to the tiers' layers, not into the global layer.
    assert written["config"] == {"maintenance": {"window": "sun 02:00", "regions": ["eu", "us"]}}
    assert set(written["tiers"]) == {"free", "pro", "enterprise"}
    pro_version = written["tiers"]["pro"]["version"]
    assert pro_version > global_version
    body = await config_of(api, "company_abc")
    assert body["version"] == pro_version
    assert "pro_tier" not in body["config"]["rate_limits"]
    assert body["config"]["rate_limits"]["api_calls_per_hour"] == 200  # the pro tier's value
    assert body["config"]["rate_limits"]["websocket_connections"] == 50  # tier default kept
    assert body["config"]["maintenance"] == {"window": "sun 02:00", "regions": ["eu", "us"]}
    assert body["layers"]["tier_version"] == pro_version

    # Tenant overrides win over global and tier.
    resp = await api.put(
        "/config/company_abc",
        json={"rate_limits": {"api_calls_per_hour": 25000}, "features": {"custom_models": True}},
        headers={"x-user-id": "ops-bob"},
    )
    assert resp.status_code == 200, resp.text
    body = await config_of(api, "company_abc")
    assert body["version"] == resp.json()["version"] > pro_version
    assert body["config"]["rate_limits"]["api_calls_per_hour"] == 25000
    assert body["config"]["rate_limits"]["websocket_connections"] == 50
    assert body["config"]["features"]["custom_models"] is True
    assert body["layers"]["overrides_version"] == resp.json()["version"]

    # PATCH is a JSON merge patch: null removes a key from the layer.
    resp = await api.patch(
        "/config/company_abc",
        json={"features": {"custom_models": None}, "rate_limits": {"websocket_connections": 75}},
    )
    assert resp.status_code == 200, resp.text
    overrides = (await api.get("/config/company_abc/overrides")).json()["config"]
    assert overrides == {
        "rate_limits": {"api_calls_per_hour": 25000, "websocket_connections": 75},
        "features": {},
    }
    body = await config_of(api, "company_abc")
    assert body["config"]["features"]["custom_models"] is False  # back to the tier default

    # Global changes reach the tenant's effective version too.
    before = body["version"]
    await api.patch("/config", json={"features": {"beta_dashboard": True}})
    after = await config_of(api, "company_abc")
    assert after["version"] > before
    assert after["config"]["features"]["beta_dashboard"] is True

    # A tier change is a new effective version with the new defaults.
    await api.patch("/tenants/company_abc", json={"subscription_tier": "enterprise"})
    upgraded = await config_of(api, "company_abc")
    assert upgraded["version"] > after["version"]
    assert upgraded["subscription_tier"] == "enterprise"
    assert upgraded["config"]["resource_limits"]["max_concurrent_requests"] == 1000
    assert upgraded["config"]["rate_limits"]["api_calls_per_hour"] == 25000  # override stays


async def test_the_tenant_layer_wins_over_the_global_layer_for_the_same_key(
    api: httpx.AsyncClient,
) -> None:
    """Both layers set one key: the tenant's value wins (catches a swapped merge order)."""
    await provision(api, "same_key", "pro")
    resp = await api.patch("/config", json={"rate_limits": {"api_calls_per_hour": 50}})
    assert resp.status_code == 200, resp.text
    resp = await api.patch("/config/same_key", json={"rate_limits": {"api_calls_per_hour": 25000}})
    assert resp.status_code == 200, resp.text
    body = await config_of(api, "same_key")
    assert body["config"]["rate_limits"]["api_calls_per_hour"] == 25000
    # A tenant without an override of its own gets the global value over its tier default.
    await provision(api, "no_override", "pro")
    other = await config_of(api, "no_override")
    assert other["config"]["rate_limits"]["api_calls_per_hour"] == 50


async def test_tier_layers_are_versioned_layers_between_global_and_tenant(
    api: httpx.AsyncClient,
) -> None:
    await provision(api, "tiered_free", "free")
    await provision(api, "tiered_pro", "pro")
    await api.patch("/config", json={"features": {"beta": False}})
    resp = await api.put("/config/tiers/pro", json={"features": {"beta": True}})
    assert resp.status_code == 200, resp.text
    first = resp.json()
    assert first["scope"] == "tier"
    assert first["tier"] == "pro"
    assert resp.headers["etag"] == f'"{first["version"]}"'
    pro = await config_of(api, "tiered_pro")
    assert pro["config"]["features"]["beta"] is True  # the tier layer beats the global one
    assert pro["version"] == first["version"] == pro["layers"]["tier_version"]
    free = await config_of(api, "tiered_free")
    assert free["config"]["features"]["beta"] is False  # another tier's layer does not apply
    assert free["version"] < first["version"]

    # If-Match takes the tier layer's version; a stale one is 412 and changes nothing.
    stale = {"If-Match": f'"{first["version"] - 1}"'}
    resp = await api.patch("/config/tiers/pro", json={"features": {"x": True}}, headers=stale)
    assert_error(resp, 412, "precondition_failed")
    resp = await api.patch(
        "/config/tiers/pro",
        json={"rate_limits": {"api_calls_per_hour": 300}},
        headers={"If-Match": f'"{first["version"]}"'},
    )
    assert resp.status_code == 200, resp.text
    layer = (await api.get("/config/tiers/pro")).json()
    assert layer["config"] == {
        "features": {"beta": True},
        "rate_limits": {"api_calls_per_hour": 300},
    }

    listed = (await api.get("/config/tiers")).json()["tiers"]
    assert listed["pro"]["config"] == layer["config"]
    assert listed["free"]["version"] == 0
    history = (await api.get("/config/tiers/pro/history")).json()
    assert [v["version"] for v in history["versions"]] == [resp.json()["version"], first["version"]]
    resp = await api.post(f"/config/tiers/pro/rollback/{first['version']}")
    assert resp.status_code == 200, resp.text
    assert (await config_of(api, "tiered_pro"))["config"]["rate_limits"]["api_calls_per_hour"] == (
        10000
    )

    # Bad input: unknown tier, per-tier keys outside a global write, an unknown tier key.
    assert_error(await api.put("/config/tiers/gold", json={}), 422, "invalid_request")
    resp = await api.patch("/config/tiers/pro", json={"rate_limits": {"pro_tier": 5}})
    assert_error(resp, 422, "invalid_request")
    resp = await api.patch("/config/tiered_pro", json={"rate_limits": {"free_tier": 5}})
    assert_error(resp, 422, "invalid_request")
    before = (await api.get("/config")).json()["version"]
    resp = await api.patch("/config", json={"rate_limits": {"gold_tier": 5, "free_tier": 1}})
    error = assert_error(resp, 422, "invalid_request")
    assert error["details"]["errors"][0]["field"] == "rate_limits.gold_tier"
    resp = await api.patch("/config", json={"features": {"free_tier": True}})
    assert_error(resp, 422, "invalid_request")
    assert (await api.get("/config")).json()["version"] == before  # nothing half written
    assert (await api.get("/config/tiers/free")).json()["version"] == 0


async def test_per_tier_values_in_a_global_write(api: httpx.AsyncClient) -> None:
    await provision(api, "pt_free", "free")
    await provision(api, "pt_ent", "enterprise")
    resp = await api.patch(
        "/config",
        json={
            "rate_limits": {"free_tier": 50, "enterprise_tier": {"websocket_connections": 900}},
            "features": {"beta": True},
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["config"] == {"features": {"beta": True}}
    free = (await config_of(api, "pt_free"))["config"]
    assert free["rate_limits"] == {"api_calls_per_hour": 50, "websocket_connections": 5}
    assert free["features"]["beta"] is True
    ent = (await config_of(api, "pt_ent"))["config"]
    assert ent["rate_limits"] == {"api_calls_per_hour": 100000, "websocket_connections": 900}

    # A PATCH with only per-tier values writes no global version; null removes the value.
    global_version = (await api.get("/config")).json()["version"]
    resp = await api.patch("/config", json={"rate_limits": {"free_tier": None}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == global_version
    assert (await api.get("/config/tiers/free")).json()["config"] == {"rate_limits": {}}
    free = (await config_of(api, "pt_free"))["config"]
    assert free["rate_limits"]["api_calls_per_hour"] == 1000

    # If-Match guards the global layer even when only tier layers change.
    resp = await api.patch(
        "/config",
        json={"rate_limits": {"free_tier": 7}},
        headers={"If-Match": f'"{global_version - 1}"'},
    )
    assert_error(resp, 412, "precondition_failed")
    assert (await config_of(api, "pt_free"))["config"]["rate_limits"]["api_calls_per_hour"] == 1000


async def test_the_rate_limiter_enforces_the_effective_hourly_limit(config_hub: ConfigHub) -> None:
    api = config_hub.api
    await provision(api, "limited", "free")
    token = await config_hub.issue("tenant", tenant_id="limited")
    resp = await api.patch("/config", json={"rate_limits": {"free_tier": 50}})
    assert resp.status_code == 200, resp.text
    async with config_hub.client_with(token) as tenant:
        for _ in range(20):
            resp = await tenant.get("/config/limited")
            if resp.status_code == 429:
                break
            assert resp.status_code == 200, resp.text
        error = assert_error(resp, 429, "rate_limited")
        assert error["details"]["limit_per_hour"] == 50
        # The tenant's own override wins over its tier's value, at once.
        resp = await api.patch(
            "/config/limited", json={"rate_limits": {"api_calls_per_hour": 6000}}
        )
        assert resp.status_code == 200, resp.text
        resp = await tenant.get("/config/limited")
        assert resp.status_code == 200, resp.text


async def test_history_lists_every_version_with_author_and_time(api: httpx.AsyncClient) -> None:
    await provision(api, "hist", "free")
    versions = []
    for n, author in enumerate(["alice", "bob", "carol"]):
        resp = await api.put(
            "/config/hist",
            json={"rate_limits": {"api_calls_per_hour": 100 * (n + 1)}},
            headers={"x-user-id": author, "x-correlation-id": f"req-{n}"},
        )
        versions.append(resp.json()["version"])
    history = (await api.get("/config/hist/history")).json()
    assert [v["version"] for v in history["versions"]] == versions[::-1]
    assert [v["author"] for v in history["versions"]] == ["carol", "bob", "alice"]
    assert history["versions"][0]["correlation_id"] == "req-2"
    assert all(v["updated_at"].endswith("Z") for v in history["versions"])
    assert history["versions"][2]["config"] == {"rate_limits": {"api_calls_per_hour": 100}}
    assert [v["sequence"] for v in history["versions"]] == [3, 2, 1]

    # Global history too.
    await api.put("/config", json={"features": {"x": True}}, headers={"x-user-id": "dave"})
    global_history = (await api.get("/config/history")).json()
    assert global_history["count"] == 1
    assert global_history["versions"][0]["author"] == "dave"


async def test_rollback_restores_a_version_as_a_new_one(api: httpx.AsyncClient) -> None:
    await provision(api, "rb", "pro")
    first = (await api.put("/config/rb", json={"rate_limits": {"api_calls_per_hour": 111}})).json()
    await api.put("/config/rb", json={"rate_limits": {"api_calls_per_hour": 222}})
    assert (await config_of(api, "rb"))["config"]["rate_limits"]["api_calls_per_hour"] == 222

    resp = await api.post(f"/config/rb/rollback/{first['version']}", headers={"x-user-id": "sre"})
    assert resp.status_code == 200, resp.text
    rolled = resp.json()
    assert rolled["action"] == "rollback"
    assert rolled["restored_version"] == first["version"]
    assert rolled["version"] > first["version"]
    body = await config_of(api, "rb")
    assert body["config"]["rate_limits"]["api_calls_per_hour"] == 111
    history = (await api.get("/config/rb/history")).json()["versions"]
    assert [h["action"] for h in history] == ["rollback", "put", "put"]

    assert_error(await api.post("/config/rb/rollback/999999"), 404, "config_version_not_found")
    for bad in (2**64, 2**53, 0):  # out of range: refused as input, never a 500
        assert_error(await api.post(f"/config/rollback/{bad}"), 422, "invalid_request")
    assert_error(await api.get("/config", params={"index": 2**64}), 422, "invalid_request")
    assert_error(
        await api.put("/config", json={"x": 1}, headers={"If-Match": f'"{2**64}"'}),
        422,
        "invalid_request",
    )
    assert_error(await api.put("/config", json={"x": 10**30}), 422, "invalid_request")
    # Global rollback.
    g1 = (await api.put("/config", json={"features": {"a": True}})).json()
    await api.put("/config", json={"features": {"a": False}})
    assert (await api.post(f"/config/rollback/{g1['version']}")).status_code == 200
    assert (await api.get("/config")).json()["config"] == {"features": {"a": True}}


async def test_invalid_config_is_422_and_changes_nothing(api: httpx.AsyncClient) -> None:
    await provision(api, "strict", "pro")
    await api.put("/config/strict", json={"rate_limits": {"api_calls_per_hour": 5}})
    before = await config_of(api, "strict")
    history_before = (await api.get("/config/strict/history")).json()

    bad_bodies: list[Any] = [
        {"rate_limits": {"api_calls_per_hour": -1}},
        {"rate_limits": {"api_calls_per_hour": 1.5}},
        {"rate_limits": {"api_calls_per_hour": "1000"}},
        {"rate_limits": {"api_calls_per_hour": True}},
        {"resource_limits": {"max_data_storage_mb": -10}},
        {"features": {"advanced_ai": "yes"}},
        {"features": {"advanced_ai": 1}},
        {"features": ["advanced_ai"]},
        {"rate_limits": 5},
        # One good section and one bad: nothing at all is written.
        {"features": {"advanced_ai": False}, "rate_limits": {"websocket_connections": -5}},
        {"bad section!": {}},
    ]
    for body in bad_bodies:
        for method in ("PUT", "PATCH"):
            resp = await api.request(method, "/config/strict", json=body)
            error = assert_error(resp, 422, "invalid_request")
            assert error["details"]
    for body in ([1, 2], "text", 7):
        assert_error(await api.put("/config/strict", json=body), 422, "invalid_request")
    assert_error(
        await api.put(
            "/config/strict", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
        "malformed_json",
    )
    assert_error(await api.put("/config", json={"features": {"x": "on"}}), 422, "invalid_request")
    # A merge patch whose result would be invalid is refused too.
    assert_error(
        await api.patch("/config/strict", json={"rate_limits": {"api_calls_per_hour": -3}}),
        422,
        "invalid_request",
    )
    after = await config_of(api, "strict")
    assert after == before
    assert (await api.get("/config/strict/history")).json() == history_before
    assert (await api.get("/config")).json()["version"] == 0
    # Writing overrides needs a provisioned tenant.
    assert_error(await api.put("/config/nobody", json={}), 404, "tenant_not_found")


async def test_if_match_guards_writes(api: httpx.AsyncClient) -> None:
    await provision(api, "guarded", "pro")
    read = await api.get("/config/guarded")
    tag = read.headers["etag"]
    ok = await api.put("/config/guarded", json={"features": {"a": True}}, headers={"If-Match": tag})
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == f'"{ok.json()["effective_version"]}"'
    # The same (now stale) ETag again: 412, and nothing written.
    stale = await api.put(
        "/config/guarded", json={"features": {"a": False}}, headers={"If-Match": tag}
    )
    error = assert_error(stale, 412, "precondition_failed")
    assert error["details"]["current_version"] == ok.json()["version"]
    assert (await config_of(api, "guarded"))["config"]["features"]["a"] is True
    # A global write changes the tenant's effective version: the tenant ETag is stale too.
    fresh = (await api.get("/config/guarded")).headers["etag"]
    await api.put("/config", json={"features": {"g": True}})
    assert_error(
        await api.patch(
            "/config/guarded", json={"features": {"a": False}}, headers={"If-Match": fresh}
        ),
        412,
        "precondition_failed",
    )
    # Global writes with the global ETag; weak ETags and "*" are understood.
    gtag = (await api.get("/config")).headers["etag"]
    assert (
        await api.patch("/config", json={"x": 1}, headers={"If-Match": f"W/{gtag}"})
    ).status_code == 200
    assert_error(
        await api.patch("/config", json={"x": 2}, headers={"If-Match": gtag}),
        412,
        "precondition_failed",
    )
    assert (await api.patch("/config", json={"x": 3}, headers={"If-Match": "*"})).status_code == 200
    assert_error(
        await api.patch("/config", json={"x": 4}, headers={"If-Match": "abc"}),
        422,
        "invalid_request",
    )


async def test_concurrent_writers_with_the_same_etag_one_wins(api: httpx.AsyncClient) -> None:
    await provision(api, "race", "pro")
    tag = (await api.get("/config/race")).headers["etag"]
    results = await asyncio.gather(
        *(
            api.put(
                "/config/race",
                json={"rate_limits": {"api_calls_per_hour": n}},
                headers={"If-Match": tag},
            )
            for n in range(8)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [412] * 7
    assert (await api.get("/config/race/history")).json()["count"] == 1


async def test_concurrent_patches_without_if_match_lose_nothing(api: httpx.AsyncClient) -> None:
    await provision(api, "merge", "pro")
    results = await asyncio.gather(
        *(api.patch("/config/merge", json={"features": {f"flag_{n}": True}}) for n in range(10))
    )
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    overrides = (await api.get("/config/merge/overrides")).json()["config"]
    assert overrides["features"] == {f"flag_{n}": True for n in range(10)}
    assert (await api.get("/config/merge/history")).json()["count"] == 10


async def test_deleting_a_tenant_resets_overrides_and_keeps_versions_growing(
    api: httpx.AsyncClient,
) -> None:
    await provision(api, "gone", "enterprise")
    await api.put("/config/gone", json={"features": {"secret_feature": True}})
    await api.post("/tenants/gone/resources/storage/allocate", json={"amount": 10})
    before = (await config_of(api, "gone"))["version"]
    await api.delete("/tenants/gone")
    after = await config_of(api, "gone")
    assert after["version"] > before
    assert after["provisioned"] is False
    assert "secret_feature" not in after["config"]["features"]
    history = (await api.get("/config/gone/history")).json()["versions"]
    assert history[0]["action"] == "tenant_deleted"
    # Provisioned again: a fresh start, no usage carried over.
    await provision(api, "gone", "free")
    assert (await api.get("/tenants/gone/usage")).json()["resources"]["storage"]["used"] == 0


# -- long polling ----------------------------------------------------------------------


async def test_long_poll_returns_when_the_version_passes_the_index(api: httpx.AsyncClient) -> None:
    await provision(api, "poller", "pro")
    current = await config_of(api, "poller")
    # An index behind the current version answers at once.
    resp = await api.get("/config/poller", params={"index": current["version"] - 1, "wait": "30s"})
    assert resp.json()["version"] == current["version"]

    async def write_soon() -> int:
        await asyncio.sleep(0.2)
        resp = await api.patch("/config/poller", json={"features": {"pushed": True}})
        version: int = resp.json()["version"]
        return version

    poll = asyncio.create_task(
        api.get("/config/poller", params={"index": current["version"], "wait": "60s"})
    )
    written = await write_soon()
    resp = await asyncio.wait_for(poll, 30)
    assert resp.status_code == 200
    assert resp.headers["x-hub-index"] == str(written)
    assert resp.json()["config"]["features"]["pushed"] is True

    # Nothing changes: the wait runs out and the same version comes back.
    resp = await api.get("/config/poller", params={"index": written, "wait": "100ms"})
    assert resp.json()["version"] == written
    # Global long poll.
    g = asyncio.create_task(api.get("/config", params={"index": 0, "wait": "60s"}))
    await asyncio.sleep(0.05)
    gw = (await api.put("/config", json={"features": {"g": True}})).json()["version"]
    assert (await asyncio.wait_for(g, 30)).json()["version"] == gw
    # An index this store never reached (e.g. a client of a replaced store) is answered
    # with the current state instead of blocking until the store catches up.
    ahead = await asyncio.wait_for(
        api.get("/config/poller", params={"index": 10**12, "wait": "10m"}), 20
    )
    assert ahead.headers["x-hub-index"] == str(ahead.json()["version"])
    assert ahead.json()["config"]["features"]["pushed"] is True
    assert_error(
        await api.get("/config/poller", params={"index": 1, "wait": "soon"}), 422, "invalid_request"
    )
    assert_error(await api.get("/config/poller", params={"index": -1}), 422, "invalid_request")


# -- server-sent events ----------------------------------------------------------------


async def test_sse_streams_every_new_version_and_resumes(config_hub: ConfigHub) -> None:
    api = config_hub.api
    await provision(api, "streamer", "pro")
    start = (await config_of(api, "streamer"))["version"]
    started = asyncio.Event()
    async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
        reader = asyncio.create_task(
            read_events(client, f"{config_hub.url}/config/streamer/watch", 4, started=started)
        )
        await asyncio.wait_for(started.wait(), 10)
        written = []
        for n in range(3):
            resp = await api.patch("/config/streamer", json={"rate_limits": {"custom": n}})
            written.append(resp.json()["version"])
            # Let each version reach the stream on its own (versions are not collapsed then).
            await asyncio.sleep(0.1)
        events = await reader
    assert [int(e.id or 0) for e in events] == [start, *written]
    assert all(e.event == "config" for e in events)
    assert [e.data["config"]["rate_limits"].get("custom") for e in events] == [None, 0, 1, 2]
    assert events[-1].data["tenant_id"] == "streamer"

    # Disconnected: two more writes happen; resuming from the last id gets the current one.
    missed = []
    for n in (10, 11):
        missed.append(
            (await api.patch("/config/streamer", json={"rate_limits": {"custom": n}})).json()
        )
    async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
        resumed = await read_events(
            client,
            f"{config_hub.url}/config/streamer/watch",
            1,
            headers={"Last-Event-ID": events[-1].id or ""},
        )
    assert int(resumed[0].id or 0) == missed[-1]["version"]
    assert resumed[0].data["config"]["rate_limits"]["custom"] == 11


async def test_global_sse_replays_each_missed_version(config_hub: ConfigHub) -> None:
    api = config_hub.api
    v1 = (await api.put("/config", json={"features": {"n1": True}})).json()["version"]
    v2 = (await api.patch("/config", json={"features": {"n2": True}})).json()["version"]
    v3 = (await api.patch("/config", json={"features": {"n3": True}})).json()["version"]
    async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
        events = await read_events(
            client, f"{config_hub.url}/config/watch", 2, headers={"Last-Event-ID": str(v1)}
        )
    assert [int(e.id or 0) for e in events] == [v2, v3]
    assert events[0].data["config"]["features"] == {"n1": True, "n2": True}
    # An id this store never reached starts from the current state.
    async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
        events = await read_events(
            client, f"{config_hub.url}/config/watch", 1, headers={"Last-Event-ID": str(10**12)}
        )
    assert [int(e.id or 0) for e in events] == [v3]
    # A bad Last-Event-ID is a 4xx, not a broken stream.
    async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
        for bad in ("x", str(2**64)):
            resp = await client.get(
                f"{config_hub.url}/config/watch", headers={"Last-Event-ID": bad}
            )
            assert_error(resp, 422, "invalid_request")


# -- webhooks --------------------------------------------------------------------------


async def test_webhook_delivery_is_signed_and_retried(config_hub: ConfigHub) -> None:
    api = config_hub.api
    await provision(api, "hooked", "pro")
    receiver = WebhookReceiver(fail_first=2)
    async with serve(receiver.app()) as receiver_url:
        resp = await api.post(
            "/config/webhooks",
            json={"url": f"{receiver_url}/hook", "tenant_id": "hooked", "description": "risk svc"},
        )
        assert resp.status_code == 201, resp.text
        hook = resp.json()
        secret = hook["secret"]
        assert len(secret) >= 32
        written = (await api.patch("/config/hooked", json={"features": {"hooked": True}})).json()

        def delivered(received: list[Any]) -> bool:
            return any(
                r.answered == 204 and json.loads(r.body)["version"] >= written["version"]
                for r in received
            )

        await receiver.wait_for(delivered)
        # Every attempt (failed ones included) carried a valid signature over its body.
        for r in receiver.received:
            assert verify(secret, r.body, r.headers["x-hub-signature"])
            assert r.headers["x-hub-event"] == "config.changed"
        assert [r.answered for r in receiver.received][:2] == [503, 503]
        last = json.loads(receiver.received[-1].body)
        assert last["tenant_id"] == "hooked"
        assert last["data"]["config"]["features"]["hooked"] is True
        assert not verify(
            "wrong-secret-wrong-secret",
            receiver.received[-1].body,
            receiver.received[-1].headers["x-hub-signature"],
        )

        # The next change is pushed as well (each change wakes the delivery worker).
        again = (await api.patch("/config/hooked", json={"features": {"again": True}})).json()
        await receiver.wait_for(
            lambda received: any(
                json.loads(r.body)["version"] >= again["version"] for r in received
            )
        )
        last = json.loads(receiver.received[-1].body)
        assert last["data"]["config"]["features"]["again"] is True

        listed = (await api.get("/config/webhooks")).json()
        assert listed["count"] == 1
        entry = listed["webhooks"][0]
        assert "secret" not in entry
        for _ in range(100):  # the status write follows the delivery
            entry = (await api.get(f"/config/webhooks/{hook['webhook_id']}")).json()
            if entry["delivery"]["delivered_version"] == last["version"]:
                break
            await asyncio.sleep(0.05)
        assert entry["delivery"]["state"] == "delivered"
        assert entry["delivery"]["delivered_version"] == last["version"]
        assert entry["delivery"]["last_status_code"] == 204


async def test_webhook_failures_are_visible(config_hub: ConfigHub) -> None:
    api = config_hub.api
    receiver = WebhookReceiver(fail_first=1000)
    async with serve(receiver.app()) as receiver_url:
        hook = (
            await api.post(
                "/config/webhooks", json={"url": f"{receiver_url}/hook", "secret": "s" * 20}
            )
        ).json()
        written = (await api.put("/config", json={"features": {"x": True}})).json()
        await receiver.wait_for(lambda received: len(received) >= 4)
        for _ in range(200):
            entry = (await api.get(f"/config/webhooks/{hook['webhook_id']}")).json()
            if entry["delivery"]["state"] == "failed":
                break
            await asyncio.sleep(0.05)
    delivery = entry["delivery"]
    assert delivery["state"] == "failed"
    assert delivery["attempts"] == 4
    assert delivery["version"] == written["version"]
    assert delivery["last_status_code"] == 503
    assert delivery["last_error"] == "HTTP 503"
    assert delivery["delivered_version"] is None
    assert delivery["failed_deliveries"] == 1
    # Removing it works and bad registrations are refused.
    assert (await api.delete(f"/config/webhooks/{hook['webhook_id']}")).status_code == 200
    assert_error(await api.get(f"/config/webhooks/{hook['webhook_id']}"), 404, "webhook_not_found")
    for body in (
        {"url": "ftp://example.invalid/x"},
        {"url": "not a url"},
        {"url": "http://127.0.0.1:1/x", "secret": "short"},
    ):
        assert_error(await api.post("/config/webhooks", json=body), 422, "invalid_request")
    assert_error(
        await api.post(
            "/config/webhooks", json={"url": "http://127.0.0.1:1/x", "tenant_id": "nope"}
        ),
        404,
        "tenant_not_found",
    )


# -- quotas ----------------------------------------------------------------------------


async def test_allocate_up_to_the_limit_then_429(api: httpx.AsyncClient) -> None:
    await provision(api, "quota", "free")  # 5 websocket connections
    for n in range(5):
        resp = await api.post("/tenants/quota/resources/websocket_connections/allocate")
        assert resp.status_code == 200, resp.text
        assert resp.json()["used"] == n + 1
    resp = await api.post("/tenants/quota/resources/websocket_connections/allocate")
    error = assert_error(resp, 429, "quota_exceeded")
    assert error["details"]["resource"] == "websocket_connections"
    assert error["details"]["limit"] == 5
    assert error["details"]["current_usage"] == 5
    assert error["details"]["requested"] == 1

    check = (
        await api.post("/tenants/quota/resources/websocket_connections/check", json={"amount": 1})
    ).json()
    assert check["allowed"] is False
    released = await api.post(
        "/tenants/quota/resources/websocket_connections/release", json={"amount": 2}
    )
    assert released.json()["used"] == 3
    check = (
        await api.post("/tenants/quota/resources/websocket_connections/check", json={"amount": 2})
    ).json()
    assert check["allowed"] is True
    assert check["used"] == 3  # check reserves nothing
    # Never negative: releasing more than held is refused and changes nothing.
    error = assert_error(
        await api.post(
            "/tenants/quota/resources/websocket_connections/release", json={"amount": 4}
        ),
        409,
        "quota_release_exceeds_usage",
    )
    assert error["details"]["current_usage"] == 3
    usage = (await api.get("/tenants/quota/usage")).json()
    assert usage["resources"]["websocket_connections"]["used"] == 3
    assert usage["resources"]["websocket_connections"]["limit"] == 5


async def test_limits_follow_overrides_and_api_calls_have_an_hourly_window(
    api: httpx.AsyncClient,
) -> None:
    await provision(api, "metered", "free")
    await api.put(
        "/config/metered",
        json={
            "rate_limits": {"api_calls_per_hour": 3},
            "resource_limits": {"max_data_storage_mb": 50},
        },
    )
    assert (
        await api.post("/tenants/metered/resources/api_calls_per_hour/allocate", json={"amount": 3})
    ).status_code == 200
    resp = await api.post("/tenants/metered/resources/api_calls_per_hour/allocate")
    error = assert_error(resp, 429, "quota_exceeded")
    assert error["details"]["limit"] == 3
    assert 0 < float(resp.headers["retry-after"]) <= 3600
    usage = (await api.get("/tenants/metered/usage")).json()["resources"]
    assert usage["api_calls_per_hour"]["window_end"] > usage["api_calls_per_hour"]["window_start"]
    assert usage["storage"]["limit"] == 50
    assert usage["concurrent_requests"]["limit"] == 10
    resp = await api.post("/tenants/metered/resources/storage/allocate", json={"amount": 51})
    assert assert_error(resp, 429, "quota_exceeded")["details"]["unit"] == "MB"


async def test_usage_at_80_percent_raises_an_alert(api: httpx.AsyncClient) -> None:
    await provision(api, "alerting", "free")  # 10 concurrent requests
    await api.post("/tenants/alerting/resources/concurrent_requests/allocate", json={"amount": 7})
    assert (await api.get("/alerts")).json()["count"] == 0
    await api.post("/tenants/alerting/resources/concurrent_requests/allocate", json={"amount": 1})
    alerts = (await api.get("/alerts")).json()["alerts"]
    assert len(alerts) == 1
    assert alerts[0]["tenant_id"] == "alerting"
    assert alerts[0]["resource"] == "concurrent_requests"
    assert alerts[0]["severity"] == "warning"
    assert alerts[0]["utilization"] == 0.8
    assert alerts[0]["since"]
    usage = (await api.get("/tenants/alerting/usage")).json()
    assert usage["alerts"] == ["concurrent_requests"]
    metrics = (await api.get("/metrics")).text
    assert (
        'hub_tenant_resource_utilization_ratio{resource="concurrent_requests",'
        'tenant_id="alerting"} 0.8' in metrics
    )
    assert 'hub_tenant_quota_alerts{severity="warning"} 1.0' in metrics
    await api.post("/tenants/alerting/resources/concurrent_requests/allocate", json={"amount": 2})
    assert (await api.get("/alerts")).json()["alerts"][0]["severity"] == "critical"
    await api.post("/tenants/alerting/resources/concurrent_requests/release", json={"amount": 5})
    assert (await api.get("/alerts")).json()["count"] == 0


async def test_concurrent_allocations_never_exceed_the_limit(api: httpx.AsyncClient) -> None:
    await provision(api, "crowd", "free")  # 5 websocket connections
    results = await asyncio.gather(
        *(api.post("/tenants/crowd/resources/websocket_connections/allocate") for _ in range(30))
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 5, [r.text for r in results if r.status_code not in (200, 429)]
    assert statuses.count(429) == 25
    assert (await api.get("/tenants/crowd/usage")).json()["resources"]["websocket_connections"][
        "used"
    ] == 5


async def test_bad_quota_requests_are_4xx(api: httpx.AsyncClient) -> None:
    await provision(api, "q", "pro")
    assert_error(await api.post("/tenants/q/resources/gpus/allocate"), 422, "invalid_request")
    for amount in (0, -1, 1.5, "2"):
        assert_error(
            await api.post("/tenants/q/resources/storage/allocate", json={"amount": amount}),
            422,
            "invalid_request",
        )
    assert_error(
        await api.post("/tenants/nobody/resources/storage/allocate"), 404, "tenant_not_found"
    )
    assert_error(await api.get("/tenants/nobody/usage"), 404, "tenant_not_found")
    assert (await api.get("/tenants/q/usage")).json()["resources"]["storage"]["used"] == 0


# -- access control ------------------------------------------------------------------


async def test_tenant_tokens_reach_only_their_own_tenant(config_hub: ConfigHub) -> None:
    api = config_hub.api
    await provision(api, "tenant_a", "pro")
    await provision(api, "tenant_b", "free")
    await api.post("/tenants/tenant_b/resources/storage/allocate", json={"amount": 90})
    token = await config_hub.issue("tenant", tenant_id="tenant_a")
    async with config_hub.client_with(token) as client:
        own = await client.get("/config/tenant_a")
        assert own.status_code == 200, own.text
        assert own.json()["subscription_tier"] == "pro"
        assert (await client.get("/tenants/tenant_a/usage")).status_code == 200
        assert [t["tenant_id"] for t in (await client.get("/tenants")).json()["tenants"]] == [
            "tenant_a"
        ]
        for path in (
            "/config/tenant_b",
            "/config/tenant_b/history",
            "/config/tenant_b/overrides",
            "/tenants/tenant_b",
            "/tenants/tenant_b/usage",
        ):
            assert_error(await client.get(path), 403, "tenant_mismatch")
        # Tenant b's storage alert (90 of 100 MB) is not shown to tenant a.
        assert (await client.get("/alerts")).json()["count"] == 0
        assert_error(await client.get("/metrics"), 403, "forbidden")
        # Read-only role: no config writes, no quota changes, no provisioning.
        assert_error(await client.put("/config/tenant_a", json={}), 403, "forbidden")
        assert_error(await client.patch("/config", json={}), 403, "forbidden")
        assert_error(
            await client.post("/tenants/tenant_a/resources/storage/allocate"), 403, "forbidden"
        )
        assert_error(
            await client.post("/tenants", json={"tenant_id": "x", "subscription_tier": "pro"}),
            403,
            "forbidden",
        )
        # A tenant token cannot raise its tier by header.
        assert_error(
            await client.get("/config/tenant_a", headers={"x-subscription-tier": "enterprise"}),
            403,
            "tenant_mismatch",
        )
    assert (await api.get("/alerts")).json()["count"] == 1  # the admin sees it


async def test_only_gateways_assert_tiers_and_services_report_usage(config_hub: ConfigHub) -> None:
    api = config_hub.api
    await provision(api, "metered_svc", "free")
    gateway = await config_hub.issue("gateway")
    service = await config_hub.issue("service")
    async with config_hub.client_with(gateway) as client:
        guest = await client.get("/config/walk_in", headers={"x-subscription-tier": "enterprise"})
        assert guest.json()["config"]["features"]["custom_models"] is True
    async with config_hub.client_with(service) as client:
        # A service forwards tenant context; an unprovisioned tenant is free whatever it asserts.
        capped = await client.get("/config/walk_in", headers={"x-subscription-tier": "enterprise"})
        assert capped.json()["subscription_tier"] == "free", capped.text
        assert (await client.get("/config/walk_in")).json()["subscription_tier"] == "free"
        resp = await client.post("/tenants/metered_svc/resources/api_calls_per_hour/allocate")
        assert resp.status_code == 200, resp.text
        assert_error(await client.put("/config", json={}), 403, "forbidden")
    async with config_hub.client_with(None) as anonymous:
        assert_error(await anonymous.get("/config/metered_svc"), 401, "unauthorized")


async def stream_until_ended(url: str, token: str, started: asyncio.Event) -> list[SSEEvent]:
    """Every event of an SSE stream until the hub ends it."""
    events: list[SSEEvent] = []
    headers = {"authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("GET", url, headers=headers) as resp,
    ):
        assert resp.status_code == 200, await resp.aread()
        fields: dict[str, str] = {}
        async for line in resp.aiter_lines():
            if line == "":
                if "data" in fields:
                    data = json.loads(fields["data"])
                    events.append(SSEEvent(fields.get("id"), fields.get("event"), data))
                    started.set()
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    return events


async def test_tenant_removal_and_token_expiry_end_streams_and_polls(
    config_hub: ConfigHub,
) -> None:
    api = config_hub.api
    await provision(api, "leaving", "pro")
    tenant_token = await config_hub.issue("tenant", tenant_id="leaving")
    started = asyncio.Event()
    stream = asyncio.create_task(
        stream_until_ended(f"{config_hub.url}/config/leaving/watch", tenant_token, started)
    )
    await asyncio.wait_for(started.wait(), 30)
    resp = await api.delete("/tenants/leaving")
    assert resp.status_code == 200, resp.text
    events = await asyncio.wait_for(stream, 60)
    assert events[-1].event == "error"
    assert events[-1].data["error"]["code"] == "unauthorized"
    assert "removed" in events[-1].data["error"]["message"]

    # A token that expires: its stream and its long poll end when it does, and it is 401.
    await provision(api, "brief", "free")
    resp = await api.post("/tokens", json={"role": "read-only", "name": "brief", "expires_in": 2})
    assert resp.status_code == 201, resp.text
    assert resp.json()["record"]["expires_at"]
    brief = resp.json()["token"]
    started = asyncio.Event()
    stream = asyncio.create_task(
        stream_until_ended(f"{config_hub.url}/config/brief/watch", brief, started)
    )
    version = (await config_of(api, "brief"))["version"]
    async with config_hub.client_with(brief) as reader:
        poll = asyncio.create_task(
            reader.get("/config/brief", params={"index": version, "wait": "5m"})
        )
        await asyncio.wait_for(started.wait(), 30)
        events = await asyncio.wait_for(stream, 60)
        assert events[-1].event == "error"
        assert "expired" in events[-1].data["error"]["message"]
        polled = await asyncio.wait_for(poll, 60)
        assert_error(polled, 401, "unauthorized")
        assert_error(await reader.get("/config/brief"), 401, "unauthorized")
