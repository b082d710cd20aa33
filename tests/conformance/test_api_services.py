"""The registration and discovery API, over every backend kind."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import RunningHub, assert_error

PRO = {"x-tenant-id": "company_abc", "x-subscription-tier": "pro", "x-user-id": "u1"}
FREE = {"x-tenant-id": "company_free", "x-subscription-tier": "free"}
ENTERPRISE = {"x-tenant-id": "company_big", "x-subscription-tier": "enterprise"}


def registration(name: str, port: int, **extra: Any) -> dict[str, Any]:
    """A registration of an instance that stays healthy on every backend.

    Nothing listens on these ports: a live Consul agent (1.8.7 ignores
    FailuresBeforeCritical) turns a default tcp check critical at its first run, at a
    random moment within the first interval, which would race every "healthy" assertion.
    A TTL check starts passing and stays so for the test, as the default check would on
    the backends the hub probes (probing is off in these tests). Tests of checks
    themselves pass ``check``/``ttl`` (and tests/conformance/test_api_checks.py).
    """
    if "check" not in extra and "ttl" not in extra:
        extra["ttl"] = 300
    return {"name": name, "host": "127.0.0.1", "port": port, **extra}


async def register(api: httpx.AsyncClient, name: str, port: int, **extra: Any) -> str:
    resp = await api.post("/services/register", json=registration(name, port, **extra))
    assert resp.status_code in (200, 201), resp.text
    instance_id: str = resp.json()["instance_id"]
    return instance_id


async def test_register_is_readable_immediately_and_idempotent(api: httpx.AsyncClient) -> None:
    body = registration(
        "data-bridge",
        8001,
        protocol="http",
        health_endpoint="/health",
        version="2.5.0",
        tags=["ticks"],
        meta={"zone": "a"},
        weight=3,
    )
    first = await api.post("/services/register", json=body)
    assert first.status_code == 201
    result = first.json()
    assert result["service_name"] == "data-bridge"
    assert result["created"] is True
    # Read-your-writes: no sleep between the write and the read.
    svc = (await api.get("/services/data-bridge")).json()
    assert [i["instance_id"] for i in svc["instances"]] == [result["instance_id"]]
    inst = svc["instances"][0]
    assert inst["url"] == "http://127.0.0.1:8001"
    assert (inst["version"], inst["tags"], inst["meta"], inst["weight"]) == (
        "2.5.0",
        ["ticks"],
        {"zone": "a"},
        3,
    )
    again = await api.post("/services/register", json=body)
    assert again.status_code == 200
    assert again.json()["instance_id"] == result["instance_id"]
    assert again.json()["created"] is False
    svc = (await api.get("/services/data-bridge")).json()
    assert len(svc["instances"]) == 1
    assert svc["instances"][0]["registered_at"] == inst["registered_at"]


async def test_explicit_instance_ids_and_several_instances(api: httpx.AsyncClient) -> None:
    await register(api, "pricing", 9001, instance_id="pricing-a")
    await register(api, "pricing", 9002, instance_id="pricing-b")
    svc = (await api.get("/services/pricing")).json()
    assert sorted(i["instance_id"] for i in svc["instances"]) == ["pricing-a", "pricing-b"]
    assert svc["healthy_instances"] == 2
    assert svc["stale"] is False


async def test_deregister_removes_the_instance(api: httpx.AsyncClient) -> None:
    iid = await register(api, "risk-management", 8010)
    resp = await api.delete(f"/services/risk-management/instances/{iid}")
    assert resp.status_code == 200
    assert resp.json()["deregistered"] is True
    assert_error(await api.get("/services/risk-management"), 404, "service_not_found")
    assert_error(
        await api.delete(f"/services/risk-management/instances/{iid}"), 404, "instance_not_found"
    )
    assert_error(await api.get("/services/discover/risk-management"), 404, "service_not_found")


async def test_ttl_instance_lives_while_heartbeating_then_expires(api: httpx.AsyncClient) -> None:
    # Heartbeats keep a TTL instance alive beyond its TTL; without them it expires. Tied to
    # what is observed, not to timings: the instance must be seen alive, each beat answering
    # 200, more than twice its TTL after it registered. A machine that stalls for longer
    # than the TTL after a beat may rightly expire the instance: that attempt starts over
    # (bounded), while an expiry seen within the TTL of a beat fails the test.
    ttl = 2
    loop = asyncio.get_running_loop()
    for _attempt in range(5):
        iid = await register(api, "ml-processing", 8020, ttl=ttl)
        registered = last_beat_sent = loop.time()
        while True:
            sent = loop.time()
            beat = await api.put(f"/services/ml-processing/instances/{iid}/heartbeat")
            listing = await api.get("/services/ml-processing")
            answered = loop.time()
            if beat.status_code != 200 or listing.status_code != 200:
                assert answered - last_beat_sent >= ttl, (
                    f"expired within its TTL of a heartbeat: {beat.text} {listing.text}"
                )
                break  # stalled for longer than the TTL: try again
            assert beat.json()["ttl"] == ttl
            assert [i["instance_id"] for i in listing.json()["instances"]] == [iid]
            last_beat_sent = sent
            if answered - registered > 2 * ttl:
                break
            await asyncio.sleep(ttl / 10)
        if listing.status_code == 200 and beat.status_code == 200:
            break
    else:
        pytest.fail("every attempt stalled for longer than the TTL between heartbeats")
    deadline = loop.time() + 60
    while (await api.get("/services/ml-processing")).status_code == 200:
        assert loop.time() < deadline, "TTL instance never expired"
        await asyncio.sleep(0.2)
    expired = await api.put(f"/services/ml-processing/instances/{iid}/heartbeat")
    assert_error(expired, 404, "instance_not_found")


async def test_heartbeat_reports_load(api: httpx.AsyncClient) -> None:
    iid = await register(api, "api-gateway", 8000, ttl=30)
    resp = await api.put(f"/services/api-gateway/instances/{iid}/heartbeat", json={"load": 0.3})
    assert resp.status_code == 200
    svc = (await api.get("/services/api-gateway")).json()
    assert svc["instances"][0]["load"] == 0.3
    bad = await api.put(f"/services/api-gateway/instances/{iid}/heartbeat", json={"load": 7})
    assert_error(bad, 422, "invalid_request")
    unknown = await api.put("/services/api-gateway/instances/nope/heartbeat")
    assert_error(unknown, 404, "instance_not_found")


async def _three_tiers(api: httpx.AsyncClient) -> None:
    await register(api, "market-data", 8100)
    await register(api, "trading-engine", 8007, subscription_requirements=["pro", "enterprise"])
    await register(api, "custom-models", 8200, subscription_requirements=["enterprise"])


async def test_listing_is_filtered_by_tier(api: httpx.AsyncClient) -> None:
    await _three_tiers(api)

    async def names(headers: dict[str, str], **params: Any) -> list[str]:
        resp = await api.get("/services/", headers=headers, params=params)
        assert resp.status_code == 200, resp.text
        return sorted(resp.json()["services"])

    everything = ["custom-models", "market-data", "trading-engine"]
    assert await names({}) == everything
    assert await names(FREE) == ["market-data"]
    assert await names(PRO) == ["market-data", "trading-engine"]
    assert await names(ENTERPRISE) == everything
    assert await names(FREE, legacy_mode="true") == everything
    alias = {"x-company-id": "company_abc", "x-subscription-tier": "pro"}
    assert await names(alias) == ["market-data", "trading-engine"]
    # A tenant with no asserted (or provisioned) tier is treated as free.
    assert await names({"x-tenant-id": "someone"}) == ["market-data"]
    body = (await api.get("/services/", headers=PRO)).json()
    assert (body["filtered"], body["subscription_tier"], body["tenant_id"]) == (
        True,
        "pro",
        "company_abc",
    )
    assert body["count"] == 2


async def test_post_discover_lists_services_for_the_gateway_context(
    api: httpx.AsyncClient,
) -> None:
    await _three_tiers(api)
    resp = await api.post("/services/discover", headers=PRO)
    assert resp.status_code == 200
    assert sorted(resp.json()["services"]) == ["market-data", "trading-engine"]


async def test_discover_one_service(api: httpx.AsyncClient) -> None:
    await _three_tiers(api)
    resp = await api.get("/services/discover/trading-engine", headers=PRO)
    assert resp.status_code == 200
    body = resp.json()
    assert body["service_name"] == "trading-engine"
    assert body["recommended_endpoint"] == "http://127.0.0.1:8007"
    assert body["all_healthy_endpoints"] == ["http://127.0.0.1:8007"]
    assert set(body["confidence"]) == {"http://127.0.0.1:8007"}
    assert 0 <= body["confidence"]["http://127.0.0.1:8007"] <= 1
    assert body["connection_type"] == "direct_call"
    assert body["stale"] is False
    assert "x-hub-stale" not in resp.headers
    denied = assert_error(
        await api.get("/services/discover/trading-engine", headers=FREE), 403, "tier_not_allowed"
    )
    assert denied["details"]["minimum_tier"] == "pro"
    assert "pro" in denied["message"]
    assert_error(await api.get("/services/discover/unknown-svc"), 404, "service_not_found")
    # The spec's second example passes the tenant as a query parameter.
    by_query = await api.get(
        "/services/discover/custom-models", params={"tenant_id": "company_free"}
    )
    assert_error(by_query, 403, "tier_not_allowed")


async def test_recommendations_follow_weights(api: httpx.AsyncClient) -> None:
    await register(api, "quotes", 9101, weight=1)
    await register(api, "quotes", 9102, weight=3)
    picks = Counter()
    for _ in range(400):
        resp = await api.get("/services/discover/quotes", params={"strategy": "round_robin"})
        picks[resp.json()["recommended_endpoint"]] += 1
    # Smooth weighted round robin is exact over whole cycles of sum(weights) picks (the
    # default, p2c, follows weights statistically: tests/unit/test_balancing.py).
    assert picks == {"http://127.0.0.1:9101": 100, "http://127.0.0.1:9102": 300}


BAD_REGISTRATIONS = [
    ({"name": "Upper", "host": "h", "port": 1}, "name"),
    ({"name": "under_score", "host": "h", "port": 1}, "name"),
    ({"name": "-lead", "host": "h", "port": 1}, "name"),
    ({"name": "a" * 64, "host": "h", "port": 1}, "name"),
    ({"name": "../etc", "host": "h", "port": 1}, "name"),
    ({"name": "", "host": "h", "port": 1}, "name"),
    ({"name": "ok", "host": "h", "port": 0}, "port"),
    ({"name": "ok", "host": "h", "port": 65536}, "port"),
    ({"name": "ok", "host": "h", "port": "abc"}, "port"),
    ({"name": "ok", "host": "bad host!", "port": 1}, "host"),
    ({"name": "ok", "host": "h", "port": 1, "subscription_requirements": ["gold"]}, "0"),
    ({"name": "ok", "host": "h", "port": 1, "resource_tier": "huge"}, "resource_tier"),
    ({"name": "ok", "host": "h", "port": 1, "protocol": "smtp"}, "protocol"),
    ({"name": "ok", "host": "h", "port": 1, "ttl": 0}, "ttl"),
    ({"name": "ok", "host": "h", "port": 1, "weight": -1}, "weight"),
    ({"name": "ok", "host": "h", "port": 1, "instance_id": "a/b"}, "instance_id"),
    ({"name": "ok", "host": "h", "port": 1, "health_endpoint": "no-slash"}, "health_endpoint"),
    ({"name": "ok", "host": "h", "port": 1, "unknown_field": 1}, "unknown_field"),
    ({"host": "h", "port": 1}, "name"),
]


@pytest.mark.parametrize(("body", "field"), BAD_REGISTRATIONS)
async def test_bad_registrations_are_4xx_and_write_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    error = assert_error(await api.post("/services/register", json=body), 422, "invalid_request")
    assert any(field in e["field"] for e in error["details"]["errors"]), error
    listing = (await api.get("/services/")).json()
    assert listing["services"] == {}


async def test_malformed_and_wrongly_typed_bodies(api: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    malformed = await api.post("/services/register", content=b"{bad", headers=headers)
    assert_error(malformed, 400, "malformed_json")
    assert_error(
        await api.post("/services/register", content=b"[1, 2]", headers=headers),
        422,
        "invalid_request",
    )
    assert_error(await api.post("/services/register"), 422, "invalid_request")
    assert_error(
        await api.post("/services/register", content=b"\xff\xfe", headers=headers),
        400,
        "malformed_json",
    )
    assert (await api.get("/services/")).json()["count"] == 0


async def test_oversized_bodies_are_refused(api: httpx.AsyncClient) -> None:
    huge = json.dumps(registration("big", 1, meta={"k": "v" * 500}) | {"pad": "x" * 40_000})
    resp = await api.post(
        "/services/register", content=huge, headers={"content-type": "application/json"}
    )
    assert_error(resp, 413, "payload_too_large")

    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(40):
            yield b" " * 1024

    streamed = await api.post(
        "/services/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(streamed, 413, "payload_too_large")
    assert (await api.get("/services/")).json()["count"] == 0


async def test_bad_paths_headers_and_methods(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/services/Not_Valid"), 422, "invalid_request")
    unknown_tier = await api.get("/services/", headers={"x-subscription-tier": "platinum"})
    assert unknown_tier.status_code == 200, unknown_tier.text
    assert unknown_tier.json()["subscription_tier"] == "free"  # the spec's get(tier, 0)
    assert_error(
        await api.get("/services/", headers={"x-tenant-id": "../../other"}),
        422,
        "invalid_request",
    )
    assert_error(await api.get("/no/such/route"), 404, "not_found")
    assert_error(await api.patch("/services/register"), 405, "method_not_allowed")


async def test_hub_health(api: httpx.AsyncClient, running_hub: RunningHub) -> None:
    await register(api, "x", 1)
    body = (await api.get("/health")).json()
    assert body["status"] == "healthy"
    assert body["backend"]["reachable"] is True
    assert body["backend"]["name"] == running_hub.hub.backend.name
    assert body["view"]["stale"] is False
    assert body["view"]["revision"] >= 1
    assert body["view"]["instances"] == 1


async def test_openapi_documents_every_registration_field(api: httpx.AsyncClient) -> None:
    assert (await api.get("/docs")).status_code == 200
    schema = (await api.get("/openapi.json")).json()
    reg = schema["components"]["schemas"]["ServiceRegistration"]["properties"]
    assert set(reg) >= {
        "name",
        "host",
        "port",
        "protocol",
        "health_endpoint",
        "tenant_capable",
        "subscription_requirements",
        "resource_tier",
        "weight",
        "version",
        "tags",
        "meta",
        "ttl",
    }
    undocumented = [
        f"{model}.{name}"
        for model in ("ServiceRegistration", "Heartbeat")
        for name, prop in schema["components"]["schemas"][model]["properties"].items()
        if not prop.get("description")
    ]
    assert undocumented == []
    paths = schema["paths"]
    assert {"/services/register", "/services/", "/services/discover/{name}", "/health"} <= set(
        paths
    )
