"""Access control, tenant isolation, audit and hostile input, over every backend."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import pytest

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before included routers were kept as branches

    def iter_route_contexts(routes: Any) -> Any:  # type: ignore[misc]
        return iter(routes)


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
    "backup_id": "00000000000000000001-0000abcd",
    "action": "pause",
}


def api_routes(hub: RunningHub, samples: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Every (method, concrete path) in the OpenAPI schema, with sample path parameters."""
    samples = SAMPLE_PATH_PARAMS | (samples or {})
    found = []
    for template, operations in hub.app.openapi()["paths"].items():
        if template in PUBLIC_PATHS:
            continue
        path = template
        for name, value in samples.items():
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
    async with running_hub.client_with(reader) as client:
        for path in ("/services/discover/trading-engine", "/services/"):
            resp = await client.get(path, headers=forged)
            assert_error(resp, 403, "tenant_headers_not_allowed")
        by_query = await client.get("/services/discover/trading-engine", params={"tenant_id": "me"})
        assert_error(by_query, 403, "tenant_headers_not_allowed")
    async with running_hub.client_with(service) as client:
        # A service forwards tenant context; "me" is not provisioned, so it is free.
        resp = await client.get("/services/discover/trading-engine", headers=forged)
        assert_error(resp, 403, "tier_not_allowed")
        listing = (await client.get("/services/", headers=forged)).json()
        assert (listing["subscription_tier"], listing["services"]) == ("free", {})
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


TENANT_OWNED_PARAMS = {"tenant_id", "id", "webhook_id", "version"}
"""Path parameters that address an object belonging to one tenant (or to none, for a
global one): the walk below fills each with an object of tenant B."""
SHARED_PARAMS = {
    "name": "services are shared; tenants are kept apart by the tier rule",
    "service": "services are shared; tenants are kept apart by the tier rule",
    "instance_id": "an instance of a shared service",
    "token_id": "token routes are admin-only",
    "resource_type": "a kind of resource, not an object",
    "type": "a kind of resource, not an object",
    "tier": "a tier's layer of the global config, shared by every tenant of that tier",
    "backup_id": "system-wide backup runs are admin-only",
    "workflow_id": "workflows are platform definitions over shared services (admin writes)",
    "deployment_id": "deployments change shared services (admin writes)",
    "action": "a deployment control verb, not an object",
}


async def test_a_tenant_token_reaches_nothing_of_another_tenant_on_any_route(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Every documented operation, called with tenant A's token against tenant B's objects."""
    # A is enterprise so its rate limit (a minute of 100,000 calls/hour) allows the walk.
    for tenant, tier in (("tenant-a", "enterprise"), ("tenant-b", "pro")):
        created = await api.post("/tenants", json={"tenant_id": tenant, "subscription_tier": tier})
        assert created.status_code == 201, created.text
    marker = "secret_flag_of_b"
    written = await api.put("/config/tenant-b", json={"features": {marker: True}})
    assert written.status_code == 200, written.text
    allocated = await api.post("/tenants/tenant-b/resources/storage/allocate", json={"amount": 95})
    assert allocated.status_code == 200, allocated.text
    hook = await api.post(
        "/config/webhooks", json={"url": f"http://127.0.0.1:9/{marker}", "tenant_id": "tenant-b"}
    )
    assert hook.status_code == 201, hook.text
    hook_of_b = hook.json()["webhook_id"]
    version_of_b = str(written.json()["effective_version"])
    objects_of_b = {"tenant_id": "tenant-b", "id": "tenant-b", "webhook_id": hook_of_b}
    objects_of_b["version"] = version_of_b
    params = {
        param
        for template in running_hub.app.openapi()["paths"]
        for param in re.findall(r"{(\w+)}", template)
    }
    assert params <= TENANT_OWNED_PARAMS | set(SHARED_PARAMS), (
        f"classify {params - TENANT_OWNED_PARAMS - set(SHARED_PARAMS)}: tenant-owned "
        "(add an object of tenant B below) or shared (say why)"
    )
    token_a = await running_hub.issue("tenant", tenant_id="tenant-a")
    checked = 0
    async with running_hub.client_with(token_a) as client:
        for method, path in api_routes(running_hub, objects_of_b):
            if path.endswith("/watch") and "tenant-b" not in path:
                continue  # a stream of tenant A's own (or global) config never ends
            resp = await client.request(method, path, json={})
            if "tenant-b" in path or hook_of_b in path:
                # Another tenant's object: refused, or (read by id) not even said to exist.
                assert resp.status_code in (403, 404), (method, path, resp.text)
                checked += 1
            else:
                assert resp.status_code != 500, (method, path, resp.text)
            assert marker not in resp.text, (method, path)
            # B's webhook URL carries the marker too, so no listing may show it.
            assert '"tenant-b"' not in resp.text or resp.status_code == 403, (method, path)
    assert checked >= 12


async def test_a_tenant_token_cannot_read_or_list_another_tenants_webhooks(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    for tenant in ("tenant-a", "tenant-b"):
        created = await api.post("/tenants", json={"tenant_id": tenant, "subscription_tier": "pro"})
        assert created.status_code == 201, created.text
    hooks = {}
    for owner in ("tenant-a", "tenant-b", None):
        body = {"url": f"http://127.0.0.1:9/{owner or 'global'}", "tenant_id": owner}
        resp = await api.post("/config/webhooks", json=body)
        assert resp.status_code == 201, resp.text
        hooks[owner] = resp.json()["webhook_id"]
    token_a = await running_hub.issue("tenant", tenant_id="tenant-a")
    async with running_hub.client_with(token_a) as client:
        own = await client.get(f"/config/webhooks/{hooks['tenant-a']}")
        assert own.status_code == 200, own.text
        assert own.json()["tenant_id"] == "tenant-a"
        for other in ("tenant-b", None):
            resp = await client.get(f"/config/webhooks/{hooks[other]}")
            assert_error(resp, 404, "webhook_not_found")
        listing = (await client.get("/config/webhooks")).json()
        assert [h["webhook_id"] for h in listing["webhooks"]] == [hooks["tenant-a"]]
        assert listing["count"] == 1
        by_query = await client.get("/config/webhooks", params={"tenant_id": "tenant-b"})
        assert_error(by_query, 403, "tenant_mismatch")
        assert hooks["tenant-b"] not in by_query.text
        own_query = await client.get("/config/webhooks", params={"tenant_id": "tenant-a"})
        assert [h["webhook_id"] for h in own_query.json()["webhooks"]] == [hooks["tenant-a"]]
    everything = (await api.get("/config/webhooks")).json()
    assert {h["webhook_id"] for h in everything["webhooks"]} == set(hooks.values())


# -- the tier rule on every per-service route (issue 11, item 1) ---------------------------

SERVICE_NAME_PARAMS = ("name", "service", "service_name")
REGISTRANT_ROUTES = {
    ("DELETE", "/services/{name}/instances/{instance_id}"),
    ("PUT", "/services/{name}/instances/{instance_id}/heartbeat"),
}
"""Routes where an instance's own registrant acts: a consumer's tier has no say there, and
only service tokens bound to the service (or admin) may call them at all."""
SAMPLE_BODIES = {("POST", "/circuits/{name}/report"): {"success": True, "latency_ms": 5}}


def app_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, hidden routes included."""
    return sorted(
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    )


def service_name_routes(app: Any) -> list[tuple[str, str]]:
    """Every route that takes a service name in its path."""
    return [
        (method, path)
        for method, path in app_routes(app)
        if any("{" + param + "}" in path for param in SERVICE_NAME_PARAMS)
    ]


async def provision(api: httpx.AsyncClient, tenant: str, tier: str) -> None:
    resp = await api.post("/tenants", json={"tenant_id": tenant, "subscription_tier": tier})
    assert resp.status_code == 201, resp.text


async def test_every_route_taking_a_service_name_applies_the_tier_rule(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """A lower-tier caller of every role reaches nothing of an enterprise-only service."""
    secret_host = "vault-host.internal"
    body = {"name": "vault", "host": secret_host, "port": 8400}
    resp = await api.post(
        "/services/register", json=body | {"subscription_requirements": ["enterprise"]}
    )
    assert resp.status_code == 201, resp.text
    instance_id = resp.json()["instance_id"]
    await provision(api, "small-co", "free")
    await provision(api, "big-co", "enterprise")
    gateway = await running_hub.issue("gateway")
    service = await running_hub.issue("service", services=["trading-engine"])
    callers = {  # (role, token, headers) for a free caller and its enterprise twin
        "tenant": (
            (await running_hub.issue("tenant", tenant_id="small-co"), {}),
            (await running_hub.issue("tenant", tenant_id="big-co"), {}),
        ),
        "gateway": (
            (gateway, {"x-tenant-id": "small-co", "x-subscription-tier": "free"}),
            (gateway, {"x-tenant-id": "small-co", "x-subscription-tier": "enterprise"}),
        ),
        "service": (  # forwarded: the asserted enterprise is capped at small-co's free
            (service, {"x-tenant-id": "small-co", "x-subscription-tier": "enterprise"}),
            (service, {"x-tenant-id": "big-co"}),
        ),
    }
    routes = service_name_routes(running_hub.app)
    assert len(routes) >= 8, routes
    gated = 0
    for method, template in routes:
        path = template.replace("{instance_id}", instance_id)
        for param in SERVICE_NAME_PARAMS:
            path = path.replace("{" + param + "}", "vault")
        assert "{" not in path, f"add a sample for {template}"
        json_body = SAMPLE_BODIES.get((method, template), {}) if method in ("POST", "PUT") else None
        for role, ((low_token, low_headers), (high_token, high_headers)) in callers.items():
            async with running_hub.client_with(low_token) as low:
                refused = await low.request(method, path, headers=low_headers, json=json_body)
            async with running_hub.client_with(high_token) as high:
                allowed = await high.request(method, path, headers=high_headers, json=json_body)
            where = (role, method, template)
            assert refused.status_code == 403, (where, refused.text)
            assert secret_host not in refused.text, where
            code = refused.json()["error"]["code"]
            twin = (
                allowed.json().get("error", {}).get("code") if allowed.status_code >= 400 else None
            )
            assert twin != "tier_not_allowed", (where, allowed.text)
            if (method, template) in REGISTRANT_ROUTES or twin == "forbidden":
                # The role may not call the route at all, whatever its tier.
                assert code == "forbidden", (where, refused.text)
            else:
                assert code == "tier_not_allowed", (where, refused.text)
                gated += 1
            if method == "GET":
                assert code == "tier_not_allowed", (where, refused.text)
    assert gated >= 3 * 5  # every read for every role, the report for gateway and service


# -- tenant context from services (issue 11, items 2 and 4) --------------------------------

LOWER, EQUAL, HIGHER = "free", "pro", "enterprise"  # relative to acme's provisioned pro
TIER_MATRIX = {
    # role: {(tenant, asserted tier): the tier the hub acts with}
    "service": {
        ("acme", None): "pro",
        ("acme", LOWER): "free",
        ("acme", EQUAL): "pro",
        ("acme", HIGHER): "pro",  # capped at the provisioned tier
        ("nobody", None): "free",
        ("nobody", LOWER): "free",
        ("nobody", EQUAL): "free",  # not provisioned: free whatever is asserted
        ("nobody", HIGHER): "free",
    },
    **{
        role: {
            ("acme", None): "pro",
            ("acme", LOWER): "free",
            ("acme", EQUAL): "pro",
            ("acme", HIGHER): "enterprise",  # trusted as asserted
            ("nobody", None): "free",
            ("nobody", LOWER): "free",
            ("nobody", EQUAL): "pro",
            ("nobody", HIGHER): "enterprise",
        }
        for role in ("gateway", "admin")
    },
}
SERVICE_PER_TIER = {"free": "free-svc", "pro": "pro-svc", "enterprise": "ent-svc"}


async def test_tenant_context_matrix_of_roles_provisioning_and_asserted_tiers(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    for port, (tier, name) in enumerate(SERVICE_PER_TIER.items(), start=8500):
        await register(api, name, port, subscription_requirements=[tier])
    await provision(api, "acme", "pro")
    tokens = {
        "service": await running_hub.issue("service", services=["trading-engine"]),
        "gateway": await running_hub.issue("gateway"),
        "admin": ADMIN_TOKEN,
    }
    rank = {"free": 0, "pro": 1, "enterprise": 2}
    for role, cells in TIER_MATRIX.items():
        async with running_hub.client_with(tokens[role]) as client:
            for (tenant, asserted), expected in cells.items():
                where = (role, tenant, asserted)
                tier_header = {"x-subscription-tier": asserted} if asserted else {}
                # The tenant by header, by the x-company-id alias and by the query.
                for headers, params in (
                    ({"x-tenant-id": tenant} | tier_header, {}),
                    ({"x-company-id": tenant} | tier_header, {}),
                    (tier_header, {"tenant_id": tenant}),
                ):
                    listing = await client.get("/services/", headers=headers, params=params)
                    assert listing.status_code == 200, (where, listing.text)
                    body = listing.json()
                    assert (body["tenant_id"], body["subscription_tier"]) == (tenant, expected), (
                        where,
                        headers,
                        params,
                    )
                    usable = {t for t in rank if rank[t] <= rank[expected]}
                    assert set(body["services"]) == {SERVICE_PER_TIER[t] for t in usable}, where
                for tier, name in SERVICE_PER_TIER.items():
                    resp = await client.get(
                        f"/services/discover/{name}",
                        headers={"x-tenant-id": tenant} | tier_header,
                    )
                    if rank[tier] <= rank[expected]:
                        assert resp.status_code == 200, (where, name, resp.text)
                        assert resp.json()["subscription_tier"] == expected
                    else:
                        assert_error(resp, 403, "tier_not_allowed")
                # Config defaults follow the same tier for a tenant nobody provisioned.
                config = await client.get(f"/config/{tenant}", headers=tier_header)
                assert config.status_code == 200, (where, config.text)
                if tenant == "nobody" and role == "service":
                    assert config.json()["subscription_tier"] == "free", where
    # Tenant tokens act at their provisioned tier and may not assert one; read-only
    # tokens may not send tenant context at all.
    async with running_hub.client_with(await running_hub.issue("tenant", tenant_id="acme")) as own:
        assert (await own.get("/services/")).json()["subscription_tier"] == "pro"
        for asserted in (LOWER, EQUAL, HIGHER):
            forged = {"x-subscription-tier": asserted}
            assert_error(await own.get("/services/", headers=forged), 403, "tenant_mismatch")
        assert_error(
            await own.get("/services/", headers={"x-tenant-id": "nobody"}), 403, "tenant_mismatch"
        )
    async with running_hub.client_with(await running_hub.issue("read-only")) as reader:
        for headers in ({"x-tenant-id": "acme"}, {"x-subscription-tier": LOWER}):
            resp = await reader.get("/services/", headers=headers)
            assert_error(resp, 403, "tenant_headers_not_allowed")


async def test_the_spec_integration_examples_work_verbatim_with_a_service_token(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """The seed's Example 1 (x-tenant-id header) and Example 2 (tenant_id query)."""
    for port, name in ((8601, "risk-management"), (8602, "user-management")):
        await register(api, name, port, subscription_requirements=["pro", "enterprise"])
    await provision(api, "company_abc", "pro")
    tenant_context = {"tenant_id": "company_abc", "subscription_tier": "pro", "user_id": "u1"}
    trading_engine = await running_hub.issue("service", services=["trading-engine"])
    async with running_hub.client_with(trading_engine) as httpx_with_token:
        # Example 1: Trading Engine needs Risk Management
        response = await httpx_with_token.get(
            "/services/discover/risk-management",
            headers={"x-tenant-id": tenant_context["tenant_id"]},
        )
        risk_service_endpoint = response.json()["recommended_endpoint"]
        assert risk_service_endpoint == "http://127.0.0.1:8601", response.text
        # Example 2: Analytics needs User Management
        service_info = (
            await httpx_with_token.get(
                "/services/discover/user-management",
                params={"tenant_id": tenant_context["tenant_id"]},
            )
        ).json()
        assert service_info["recommended_endpoint"] == "http://127.0.0.1:8602", service_info
        assert service_info["subscription_tier"] == "pro"
        # The same requests for a tenant nobody provisioned: free, so refused.
        unknown = await httpx_with_token.get(
            "/services/discover/risk-management", headers={"x-tenant-id": "company_xyz"}
        )
        assert_error(unknown, 403, "tier_not_allowed")


async def test_an_unknown_caller_tier_reads_as_free_an_unknown_registration_tier_is_422(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    await register(api, "public-svc", 8701)
    await register(api, "pro-svc", 8702, subscription_requirements=["pro"])
    gateway = await running_hub.issue("gateway")
    platinum = {"x-tenant-id": "company_abc", "x-subscription-tier": "platinum"}
    async with running_hub.client_with(gateway) as client:
        listing = await client.get("/services/", headers=platinum)
        assert listing.status_code == 200, listing.text
        assert listing.json()["subscription_tier"] == "free"
        assert set(listing.json()["services"]) == {"public-svc"}
        public = await client.get("/services/discover/public-svc", headers=platinum)
        assert public.status_code == 200, public.text
        assert public.json()["subscription_tier"] == "free"
        assert_error(
            await client.get("/services/discover/pro-svc", headers=platinum),
            403,
            "tier_not_allowed",
        )
    typo = {"name": "typo-svc", "host": "127.0.0.1", "port": 8703}
    resp = await api.post(
        "/services/register", json=typo | {"subscription_requirements": ["platinum"]}
    )
    assert_error(resp, 422, "invalid_request")


# -- ambiguous identity headers (issue 11, item 6) -----------------------------------------


async def test_duplicated_identity_headers_are_400_on_every_route(
    running_hub: RunningHub, api: httpx.AsyncClient
) -> None:
    gateway = await running_hub.issue("gateway")
    twice = [("authorization", f"Bearer {gateway}"), ("authorization", f"Bearer {ADMIN_TOKEN}")]
    async with running_hub.client_with(None) as client:
        for method, path in api_routes(running_hub):
            resp = await client.request(method, path, headers=twice, json={})
            error = assert_error(resp, 400, "duplicate_header")
            assert error["details"] == {"header": "authorization"}
            assert ADMIN_TOKEN not in resp.text
        same_twice = [("authorization", f"Bearer {gateway}")] * 2
        resp = await client.get("/services/", headers=same_twice)
        assert_error(resp, 400, "duplicate_header")
    async with running_hub.client_with(gateway) as client:
        for header, first, second in (
            ("x-tenant-id", "tenant-a", "tenant-b"),
            ("x-company-id", "tenant-a", "tenant-b"),
            ("x-subscription-tier", "free", "enterprise"),
        ):
            for path in ("/services/", "/services/discover/anything", "/config/tenant-a"):
                resp = await client.get(path, headers=[(header, first), (header, second)])
                error = assert_error(resp, 400, "duplicate_header")
                assert error["details"] == {"header": header}
        # The alias naming another tenant than x-tenant-id is just as ambiguous.
        aliased = [("x-tenant-id", "tenant-a"), ("x-company-id", "tenant-b")]
        error = assert_error(
            await client.get("/services/", headers=aliased), 400, "duplicate_header"
        )
        assert error["details"] == {"header": "x-company-id"}
        # A proxy repeating the same value is not ambiguous.
        both = [("x-tenant-id", "tenant-a"), ("x-company-id", "tenant-a")]
        assert (await client.get("/services/", headers=both)).status_code == 200
        same = [("x-tenant-id", "tenant-a"), ("x-tenant-id", "tenant-a")]
        resp = await client.get("/services/", headers=same)
        assert resp.status_code == 200, resp.text
        assert resp.json()["tenant_id"] == "tenant-a"
