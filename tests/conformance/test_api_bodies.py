"""Request bodies at the edge: every route that takes a body refuses a lone surrogate."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conformance.conftest import ADMIN_TOKEN, RunningHub, assert_error

# The edge check runs before any backend is touched: one backend kind is enough.
pytestmark = pytest.mark.parametrize("backend_kind", ["embedded"], indirect=True)

LONE_SURROGATE_BODY = b'{"custom": {"x": "\\ud800"}}'


def routes_taking_a_body(running_hub: RunningHub) -> list[tuple[str, str]]:
    """``(method, path)`` of every operation in the app's OpenAPI document that takes a
    request body, path parameters filled in (the edge refuses before routing matters)."""
    found = []
    for path, operations in running_hub.app.openapi()["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return found


async def test_a_lone_surrogate_is_422_on_every_route_that_takes_a_body(
    running_hub: RunningHub,
) -> None:
    routes = routes_taking_a_body(running_hub)
    # The walk must not pass vacuously: config, tenants, services, tokens... take bodies.
    assert {("PUT", "/config"), ("PATCH", "/config/1"), ("POST", "/tenants")} <= set(routes)
    transport = httpx.ASGITransport(app=running_hub.app, raise_app_exceptions=False)
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub.test", headers=headers
    ) as client:
        for method, path in routes:
            resp = await client.request(method, path, content=LONE_SURROGATE_BODY)
            error = assert_error(resp, 422, "invalid_request")
            assert error["details"]["errors"] == [
                {"field": "custom.x", "problem": "lone UTF-16 surrogate"}
            ], (method, path)


async def test_paired_surrogates_are_characters(running_hub: RunningHub) -> None:
    """An escaped emoji (a surrogate pair) is ordinary text and is stored as sent."""
    resp = await running_hub.client.put(
        "/config",
        content=b'{"custom": {"x": "\\ud83d\\ude00"}}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    assert (await running_hub.client.get("/config")).json()["config"]["custom"] == {"x": "😀"}
