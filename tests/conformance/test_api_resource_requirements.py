"""``x-resource-requirements`` on discovery, over every backend: the quota check, atomic
reservations across several resources, and bad headers as clear 4xx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conformance.conftest import RunningHub, assert_error

HEADER = "x-resource-requirements"


async def setup(api: httpx.AsyncClient, tenant: str = "acme", tier: str = "free") -> None:
    resp = await api.post("/tenants", json={"tenant_id": tenant, "subscription_tier": tier})
    assert resp.status_code == 201, resp.text
    resp = await api.post(
        "/services/register",
        json={"name": "pricing", "host": "127.0.0.1", "port": 8101, "ttl": 60},
    )
    assert resp.status_code in (200, 201), resp.text


async def discover(
    api: httpx.AsyncClient, requirements: Any, *, reserve: str | None = None, tenant: str = "acme"
) -> httpx.Response:
    raw = requirements if isinstance(requirements, str) else json.dumps(requirements)
    return await api.get(
        "/services/discover/pricing",
        params={"reserve": reserve} if reserve is not None else None,
        headers={"x-tenant-id": tenant, HEADER: raw},
    )


async def used(api: httpx.AsyncClient, tenant: str = "acme") -> dict[str, int]:
    resources = (await api.get(f"/tenants/{tenant}/usage")).json()["resources"]
    return {name: state["used"] for name, state in resources.items()}


async def test_discovery_answers_whether_the_requirements_fit(running_hub: RunningHub) -> None:
    api = running_hub.client
    await setup(api)  # free: 10 concurrent requests, 100 MB storage
    plain = await api.get("/services/discover/pricing", headers={"x-tenant-id": "acme"})
    assert "resource_check" not in plain.json()  # no header, no check

    fits = await discover(api, {"concurrent_requests": 1, "storage_mb": 50})
    assert fits.status_code == 200, fits.text
    check = fits.json()["resource_check"]
    assert check["fits"] is True
    assert check["exceeded"] == []
    assert check["reserved"] is False
    assert check["resources"]["storage"] == {
        "requested": 50,
        "fits": True,
        "unit": "MB",
        "used": 0,
        "limit": 100,
        "remaining": 100,
    }
    assert fits.json()["recommended_endpoint"] == "http://127.0.0.1:8101"

    too_much = (await discover(api, {"concurrent_requests": 1, "storage_mb": 101})).json()
    assert too_much["resource_check"]["fits"] is False
    assert too_much["resource_check"]["exceeded"] == ["storage"]
    assert too_much["resource_check"]["resources"]["concurrent_requests"]["fits"] is True
    assert (await used(api))["storage"] == 0  # checking reserves nothing


async def test_reserve_allocates_all_or_nothing(running_hub: RunningHub) -> None:
    api = running_hub.client
    await setup(api)
    reserved = await discover(api, {"concurrent_requests": 2, "storage_mb": 60}, reserve="true")
    assert reserved.status_code == 200, reserved.text
    check = reserved.json()["resource_check"]
    assert check["reserved"] is True
    assert check["resources"]["storage"]["used"] == 60
    assert (await used(api))["storage"] == 60
    assert (await used(api))["concurrent_requests"] == 2

    # concurrent_requests would fit, storage would not: neither is taken
    refused = await discover(api, {"concurrent_requests": 1, "storage_mb": 41}, reserve="true")
    error = assert_error(refused, 429, "quota_exceeded")
    assert error["details"]["exceeded"] == ["storage"]
    assert error["details"]["resource"] == "storage"
    assert error["details"]["limit"] == 100
    assert error["details"]["current_usage"] == 60
    assert (await used(api))["concurrent_requests"] == 2
    assert (await used(api))["storage"] == 60

    # released through the quota routes like any allocation
    resp = await api.post("/tenants/acme/resources/storage/release", json={"amount": 60})
    assert resp.status_code == 200, resp.text
    assert (await used(api))["storage"] == 0


async def test_concurrent_reservations_never_pass_a_limit(running_hub: RunningHub) -> None:
    api = running_hub.client
    await setup(api)
    answers = await asyncio.gather(
        *(
            discover(api, {"concurrent_requests": 1, "storage_mb": 7}, reserve="true")
            for _ in range(16)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    # 14 * 7 = 98 MB fits in 100; 10 concurrent requests is the tighter limit
    assert statuses == [200] * 10 + [429] * 6, [a.text for a in answers if a.status_code >= 500]
    assert await used(api) == {
        "api_calls_per_hour": 0,
        "websocket_connections": 0,
        "concurrent_requests": 10,
        "storage": 70,
    }


async def test_bad_requirements_are_clear_4xx_and_change_nothing(
    running_hub: RunningHub,
) -> None:
    api = running_hub.client
    await setup(api)
    cases: list[tuple[str, dict[str, str] | None, int, str]] = [
        ('{"storage_mb": 5', None, 400, "malformed_json"),
        ('{"storage_mb": ' + "1" * 1100 + "}", None, 431, "headers_too_large"),
        ("[1, 2]", None, 422, "invalid_request"),
        ("{}", None, 422, "invalid_request"),
        ('{"storage_mb": -1}', None, 422, "invalid_request"),
        ('{"storage_mb": 1.5}', None, 422, "invalid_request"),
        ('{"storage_mb": true}', None, 422, "invalid_request"),
        ('{"gpus": 1}', None, 422, "invalid_request"),
        ('{"storage": 1, "storage_mb": 1}', None, 422, "invalid_request"),
        ('{"storage_mb": 1}', {"reserve": "maybe"}, 422, "invalid_request"),
    ]
    for raw, params, status, code in cases:
        resp = await api.get(
            "/services/discover/pricing",
            params={"reserve": "true", **(params or {})},
            headers={"x-tenant-id": "acme", HEADER: raw},
        )
        error = assert_error(resp, status, code)
        assert error["message"], raw

    twice = await api.get(
        "/services/discover/pricing",
        params={"reserve": "true"},
        headers=[
            ("x-tenant-id", "acme"),
            (HEADER, '{"storage_mb": 1}'),
            (HEADER, '{"storage_mb": 99}'),
        ],
    )
    assert assert_error(twice, 400, "duplicate_header")["details"]["header"] == HEADER
    no_header = await api.get(
        "/services/discover/pricing", params={"reserve": "true"}, headers={"x-tenant-id": "acme"}
    )
    assert_error(no_header, 422, "invalid_request")
    no_tenant = await api.get("/services/discover/pricing", headers={HEADER: '{"storage_mb": 1}'})
    assert_error(no_tenant, 422, "invalid_request")
    unknown_tenant = await discover(api, {"storage_mb": 1}, tenant="nobody")
    assert_error(unknown_tenant, 404, "tenant_not_found")

    # a tenant token may read its own check but not reserve (like the quota routes)
    token = await running_hub.issue("tenant", tenant_id="acme")
    async with running_hub.client_with(token) as tenant_api:
        own = await tenant_api.get(
            "/services/discover/pricing", headers={HEADER: '{"storage_mb": 1}'}
        )
        assert own.json()["resource_check"]["fits"] is True
        refused = await tenant_api.get(
            "/services/discover/pricing",
            params={"reserve": "true"},
            headers={HEADER: '{"storage_mb": 1}'},
        )
        assert_error(refused, 403, "forbidden")
    assert (await used(api))["storage"] == 0
