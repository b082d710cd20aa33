"""Access control, tenant isolation, audit and hostile input, over every backend."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import ADMIN_TOKEN, RunningHub
from tests.conformance.test_api_services import assert_error, register

PUBLIC_PATHS = {"/health"}
SAMPLE_PATH_PARAMS = {
    "name": "market-data",
    "instance_id": "inst-1",
    "tenant_id": "tenant-b",
    "token_id": "abc123",
    "id": "tenant-b",
    "service": "market-data",
    "type": "storage",
    "resource_type": "storage",
    "version": "1",
    "tier": "pro",
    "webhook_id": "abc123",
    "workflow_id": "wf-1",
    "deployment_id": "dep-1",
}


def api_routes(hub: RunningHub) -> list[tuple[str, str]]:
    """Every (method, concrete path) in the OpenAPI schema, with sample path parameters."""
    found = []
    for template, operations in hub.app.openapi()["paths"].items():
        if template in PUBLIC_PATHS:
            continue
        path = template
        for name, value in SAMPLE_PATH_PARAMS.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"add a sample for {template}"
        found.extend((method.upper(), path) for method in operations)
    return found


async def test_every_route_but_health_requires_a_token(running_hub: RunningHub) -> None:
    routes = api_routes(running_hub)
    assert len(routes) >= 10
    async with running_hub.client_with(None) as anonymous:
        for method, path in routes:
            resp = await anonymous.request(method, path, json={})
            assert_error(resp, 401, "unauthorized")
        assert (await anonymous.get("/health")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Basic dXNlcjpwYXNz", "Bearer chub_zz", "Bearer chub_abcd.wrong", "Bearer x" * 3],
)
async def test_malformed_and_unknown_tokens_are_401(
    running_hub: RunningHub, authorization: str
) -> None:
    async with running_hub.client_with(None) as client:
        resp = await client.get("/services/", headers={"authorization": authorization})
        assert_error(resp, 401, "unauthorized")


async def test_revoked_tokens_stop_working_at_once(running_hub: RunningHub) -> None:
    token = await running_hub.issue("read-only")
    async with running_hub.client_with(token) as reader:
        assert (await reader.get("/services/")).status_code == 200
        token_id = token.split("_", 1)[1].split(".")[0]
        revoked = await running_hub.client.delete(f"/tokens/{token_id}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"]
        assert_error(await reader.get("/services/"), 401, "unauthorized")


async def test_token_listing_never_shows_secrets(running_hub: RunningHub) -> None:
    token = await running_hub.issue("gateway")
    listing = (await running_hub.client.get("/tokens")).json()["tokens"]
    secret = token.split(".", 1)[1]
    assert any(t["role"] == "gateway" for t in listing)
    assert secret not in str(listing)
    assert all("secret_sha256" not in t for t in listing)


async def test_roles_are_enforced(running_hub: RunningHub, api: httpx.AsyncClient) -> None:
    body = {"name": "svc-a", "host": "127.0.0.1", "port": 9000}
    tokens = {
        role: await running_hub.issue(role, **extra)
        for role, extra in [
            ("read-only", {}),
            ("gateway", {}),
            ("service", {"services": ["svc-a"]}),
            ("tenant", {"tenant_id": "tenant-a"}),
        ]
    }
    for role in ("read-only", "gateway", "tenant"):
        async with running_hub.client_with(tokens[role]) as client:
            assert_error(await client.post("/services/register", json=body), 403, "forbidden")
            assert_error(
                await client.post("/tokens", json={"role": "admin", "name": "x"}), 403, "forbidden"
            )
    async with running_hub.client_with(tokens["service"]) as service:
        assert (await service.post("/services/register", json=body)).status_code == 201
        other = body | {"name": "svc-b"}
        assert_error(await service.post("/services/register", json=other), 403, "forbidden")
        assert_error(await service.delete("/services/svc-b/instances/x"), 403, "forbidden")
        assert (await service.get("/services/discover/svc-a")).status_code == 200


async def test_forged_tier_headers_are_refused_not_trusted(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    await register(api, "trading-engine", 8007, subscription_requirements=["pro"])
    forged = {"x-tenant-id": "me", "x-subscription-tier": "enterprise"}
    service = await running_hub.issue("service")
    reader = await running_hub.issue("read-only")
    tenant = await running_hub.issue("tenant", tenant_id="tenant-a")
    gateway = await running_hub.issue("gateway")
    for token in (service, reader):
        async with running_hub.client_with(token) as client:
            for path in ("/services/discover/trading-engine", "/services/"):
                resp = await client.get(path, headers=forged)
                assert_error(resp, 403, "tenant_headers_not_allowed")
            by_query = await client.get(
                "/services/discover/trading-engine", params={"tenant_id": "me"}
            )
            assert_error(by_query, 403, "tenant_headers_not_allowed")
    async with running_hub.client_with(tenant) as client:
        # A tenant token acts for its own (unprovisioned: free) tenant.
        assert_error(await client.get("/services/discover/trading-engine"), 403, "tier_not_allowed")
        assert_error(
            await client.get("/services/discover/trading-engine", headers=forged),
            403,
            "tenant_mismatch",
        )
        listing = await client.get("/services/")
        assert listing.json()["services"] == {}
        assert listing.json()["tenant_id"] == "tenant-a"
        assert_error(await client.get("/services/?legacy_mode=true"), 403, "forbidden")
    async with running_hub.client_with(gateway) as client:
        ok = await client.get("/services/discover/trading-engine", headers=forged)
        assert ok.status_code == 200


async def test_writes_are_audited_without_secrets(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    service = await running_hub.issue("service")
    async with running_hub.client_with(service) as client:
        resp = await client.post(
            "/services/register",
            json={"name": "audited", "host": "127.0.0.1", "port": 9100},
            headers={"x-correlation-id": "req-456"},
        )
        assert resp.status_code == 201
        refused = await client.post("/tokens", json={"role": "admin", "name": "x"})
        assert refused.status_code == 403
        assert_error(await client.get("/audit"), 403, "forbidden")
    page = (await api.get("/audit", params={"action": "/services/register"})).json()
    entry = page["entries"][0]
    token_id = service.split("_", 1)[1].split(".")[0]
    assert entry["token_id"] == token_id
    assert entry["role"] == "service"
    assert entry["action"] == "POST /services/register"
    assert entry["status"] == 201
    assert entry["outcome"] == "ok"
    assert entry["correlation_id"] == "req-456"
    everything = (await api.get("/audit", params={"limit": 1000})).json()["entries"]
    assert any(e["action"] == "POST /tokens" and e["outcome"] == "refused" for e in everything)
    assert service.split(".", 1)[1] not in str(everything)
    # Reads are not audited; paging works.
    first = (await api.get("/audit", params={"limit": 1})).json()
    assert len(first["entries"]) == 1
    assert first["next"]
    second = (await api.get("/audit", params={"limit": 1, "before": first["next"]})).json()
    assert second["entries"][0]["id"] < first["entries"][0]["id"]


async def test_tenants_see_only_their_own_audit_records(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    gateway = await running_hub.issue("gateway")
    async with running_hub.client_with(gateway) as client:
        for tenant in ("tenant-a", "tenant-b"):
            # A POST that acts for a tenant leaves a record tagged with it.
            await client.post("/services/discover", headers={"x-tenant-id": tenant})
            await client.post(
                "/services/register",
                json={"name": "x", "host": "h", "port": 1},
                headers={"x-tenant-id": tenant},
            )
    tenant_a = await running_hub.issue("tenant", tenant_id="tenant-a")
    async with running_hub.client_with(tenant_a) as client:
        own = (await client.get("/audit")).json()["entries"]
        assert own
        assert {e["tenant_id"] for e in own} == {"tenant-a"}
        assert_error(await client.get("/audit", params={"tenant_id": "tenant-b"}), 403, "forbidden")


async def test_tenant_rate_limit_answers_429_with_retry_after(running_hub: RunningHub) -> None:
    tenant = await running_hub.issue("tenant", tenant_id="chatty")
    statuses = []
    async with running_hub.client_with(tenant) as client:
        for _ in range(40):  # free tier: 1,000/hour, bursts of a minute's worth (~16)
            resp = await client.get("/services/")
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                error = assert_error(resp, 429, "rate_limited")
                assert int(resp.headers["retry-after"]) >= 1
                assert error["details"]["limit_per_hour"] == 1000
                break
    assert statuses[0] == 200
    assert statuses[-1] == 429


async def test_hostile_input(running_hub: RunningHub, api: httpx.AsyncClient) -> None:
    huge_header = {"x-filler": "a" * 20_000}
    assert_error(await api.get("/services/", headers=huge_header), 431, "headers_too_large")
    deep = b'{"name": ' + b"[" * 200 + b"]" * 200 + b"}"
    resp = await api.post(
        "/services/register", content=deep, headers={"content-type": "application/json"}
    )
    assert_error(resp, 422, "invalid_request")
    for path in ("/services/..%2Fcatalog", "/services/%2A", "/services/a%00b", "/services/*"):
        resp = await api.get(path)
        assert resp.status_code in (404, 422), (path, resp.text)
        assert resp.json()["error"]["code"] in ("invalid_request", "not_found")
    assert (await api.get("/services/")).json()["count"] == 0


async def test_secrets_never_reach_logs_or_errors(
    running_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_hub.client_with("chub_abcdef.SUPERSECRETVALUE") as client:
        resp = await client.get("/services/")
    assert "SUPERSECRETVALUE" not in resp.text
    assert "SUPERSECRETVALUE" not in caplog.text


async def test_concurrent_writes_leave_one_consistent_record(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    body: dict[str, Any] = {"name": "race", "host": "127.0.0.1", "port": 7777}

    async def once(i: int) -> int:
        resp = await api.post("/services/register", json=body | {"weight": i + 1})
        return resp.status_code

    statuses = await asyncio.gather(*(once(i) for i in range(20)))
    assert set(statuses) <= {200, 201}
    svc = (await api.get("/services/race")).json()
    assert len(svc["instances"]) == 1
    assert svc["instances"][0]["weight"] in range(1, 21)


async def test_anonymous_reads_when_the_operator_allows_them(running_hub: RunningHub) -> None:
    from facade import HubSettings, create_app

    open_app = create_app(
        HubSettings(anonymous_reads=True, admin_token=ADMIN_TOKEN),  # type: ignore[arg-type]
        backend=running_hub.hub.backend,
    )
    hub = open_app.state.hub
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=open_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as anon:
            assert (await anon.get("/services/")).status_code == 200
            write = await anon.post(
                "/services/register", json={"name": "a", "host": "h", "port": 1}
            )
            assert_error(write, 401, "unauthorized")
            forged = await anon.get("/services/", headers={"x-subscription-tier": "enterprise"})
            assert_error(forged, 403, "tenant_headers_not_allowed")
            assert_error(await anon.get("/tokens"), 401, "unauthorized")
    finally:
        await hub.stop()


async def test_numbers_json_peers_cannot_store_are_4xx_not_500(api: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    for path, body in [
        ("/config", b'{"custom": {"x": 1180591620717411303424}}'),
        ("/config", b'{"custom": 1e400}'),
        ("/config/rollback/18446744073709551616", b""),
    ]:
        resp = await api.request(
            "PUT" if path == "/config" else "POST", path, content=body, headers=headers
        )
        assert 400 <= resp.status_code < 500, (path, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request"


async def test_a_tenant_token_reaches_nothing_of_another_tenant_on_any_route(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Every documented operation, called with tenant A's token against tenant B."""
    # A is enterprise so its rate limit (a minute of 100,000 calls/hour) allows the walk.
    for tenant, tier in (("tenant-a", "enterprise"), ("tenant-b", "pro")):
        created = await api.post("/tenants", json={"tenant_id": tenant, "subscription_tier": tier})
        assert created.status_code == 201, created.text
    marker = "secret_flag_of_b"
    assert (await api.put("/config/tenant-b", json={"features": {marker: True}})).status_code == 200
    allocated = await api.post("/tenants/tenant-b/resources/storage/allocate", json={"amount": 95})
    assert allocated.status_code == 200, allocated.text
    token_a = await running_hub.issue("tenant", tenant_id="tenant-a")
    checked = 0
    async with running_hub.client_with(token_a) as client:
        for method, path in api_routes(running_hub):
            if path.endswith("/watch") and "tenant-b" not in path:
                continue  # a stream of tenant A's own (or global) config never ends
            resp = await client.request(method, path, json={})
            if "tenant-b" in path:
                assert resp.status_code == 403, (method, path, resp.text)
                checked += 1
            else:
                assert resp.status_code != 500, (method, path, resp.text)
            assert marker not in resp.text, (method, path)
            assert '"tenant-b"' not in resp.text or resp.status_code == 403, (method, path)
    assert checked >= 10
