"""Workflow coordination over every backend kind: stored DAGs and the spec's plan."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from facade.state.catalog import health_key
from tests.conformance.conftest import RunningHub, assert_error

FREE = {"x-tenant-id": "t-free", "x-subscription-tier": "free"}
PRO = {"x-tenant-id": "t-pro", "x-subscription-tier": "pro"}
ENTERPRISE = {"x-tenant-id": "t-ent", "x-subscription-tier": "enterprise"}

ORDER_FLOW = {
    "description": "place an order",
    "steps": [
        # Defined out of order on purpose: the plan lists dependencies first.
        {"name": "execute", "service": "trading-engine", "depends_on": ["risk", "prices"]},
        {"name": "prices", "service": "market-data"},
        {"name": "risk", "service": "risk-check", "depends_on": ["prices"]},
        {"name": "analyse", "service": "ml-insights", "depends_on": ["execute"]},
        {
            "name": "report",
            "service": "reporting",
            "depends_on": ["execute"],
            "required_tier": "pro",
        },
    ],
}


LISTENING: dict[int, int] = {}
"""Test port -> a real listening port: Consul's agent checks instances itself, so they
must pass a TCP check (a listening socket completes the handshake without accept)."""


@pytest.fixture(autouse=True)
def listening_ports() -> Iterator[None]:
    sockets = []
    for port in range(19101, 19107):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sockets.append(sock)
        LISTENING[port] = sock.getsockname()[1]
    yield
    LISTENING.clear()
    for sock in sockets:
        sock.close()


def url(port: int) -> str:
    return f"http://127.0.0.1:{LISTENING[port]}"


async def register(api: httpx.AsyncClient, name: str, port: int, **extra: Any) -> str:
    real = LISTENING.get(port, port)
    body = {"name": name, "host": "127.0.0.1", "port": real, "check": {"kind": "tcp"}, **extra}
    resp = await api.post("/services/register", json=body)
    assert resp.status_code in (200, 201), resp.text
    instance_id: str = resp.json()["instance_id"]
    return instance_id


async def register_all(api: httpx.AsyncClient) -> None:
    await register(api, "trading-engine", 19101)
    await register(api, "trading-engine", 19102)
    await register(api, "market-data", 19103)
    await register(api, "risk-check", 19104)
    await register(api, "ml-insights", 19105, subscription_requirements=["enterprise"])
    await register(api, "reporting", 19106)


async def test_define_read_replace_and_delete(api: httpx.AsyncClient) -> None:
    await register_all(api)
    created = await api.put("/coordination/workflows/order-flow", json=ORDER_FLOW)
    assert created.status_code == 201, created.text
    stored = (await api.get("/coordination/workflows/order-flow")).json()
    assert [s["name"] for s in stored["steps"]] == [
        "prices",
        "risk",
        "execute",
        "analyse",
        "report",
    ]
    assert stored["steps"][2]["depends_on"] == ["risk", "prices"]
    assert stored["steps"][4]["required_tier"] == "pro"
    replaced = await api.put(
        "/coordination/workflows/order-flow",
        json={"steps": [{"name": "prices", "service": "market-data"}]},
    )
    assert replaced.status_code == 200
    assert replaced.json()["created_at"] == stored["created_at"]
    listed = (await api.get("/coordination/workflows")).json()
    assert [w["workflow_id"] for w in listed["workflows"]] == ["order-flow"]
    assert (await api.delete("/coordination/workflows/order-flow")).status_code == 200
    assert_error(await api.get("/coordination/workflows/order-flow"), 404, "workflow_not_found")
    assert_error(await api.delete("/coordination/workflows/order-flow"), 404, "workflow_not_found")
    assert_error(await api.post("/coordination/workflow/order-flow"), 404, "workflow_not_found")


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        (
            [
                {"name": "a", "service": "market-data", "depends_on": ["c"]},
                {"name": "b", "service": "market-data", "depends_on": ["a"]},
                {"name": "c", "service": "market-data", "depends_on": ["b"]},
            ],
            "cycle",
        ),
        ([{"name": "a", "service": "market-data", "depends_on": ["a"]}], "depends on itself"),
        ([{"name": "a", "service": "market-data", "depends_on": ["x"]}], "unknown steps"),
        ([{"name": "a", "service": "nowhere"}], "unknown services"),
        (
            [{"name": "a", "service": "market-data"}, {"name": "a", "service": "market-data"}],
            "duplicate",
        ),
    ],
)
async def test_invalid_definitions_are_refused_and_nothing_is_written(
    api: httpx.AsyncClient, steps: list[dict[str, Any]], problem: str
) -> None:
    await register(api, "market-data", 19103)
    resp = await api.put("/coordination/workflows/bad", json={"steps": steps})
    error = assert_error(resp, 422, "invalid_request")
    assert problem in orjson.dumps(error["details"]).decode()
    assert_error(await api.get("/coordination/workflows/bad"), 404, "workflow_not_found")


async def test_malformed_bodies_are_422(api: httpx.AsyncClient) -> None:
    assert_error(
        await api.put("/coordination/workflows/x", json={"steps": []}), 422, "invalid_request"
    )
    bad_tier = {"steps": [{"name": "a", "service": "s", "required_tier": "gold"}]}
    assert_error(await api.put("/coordination/workflows/x", json=bad_tier), 422, "invalid_request")
    assert_error(
        await api.put("/coordination/workflows/Bad_Id", json=ORDER_FLOW), 422, "invalid_request"
    )


def entries(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["step"]: e for e in plan["coordination_plan"]}


async def test_plans_for_each_tier_in_the_spec_shape(api: httpx.AsyncClient) -> None:
    await register_all(api)
    assert (await api.put("/coordination/workflows/order-flow", json=ORDER_FLOW)).status_code == 201
    plans = {}
    for name, headers in (("free", FREE), ("pro", PRO), ("enterprise", ENTERPRISE)):
        resp = await api.post("/coordination/workflow/order-flow", headers=headers)
        assert resp.status_code == 200, resp.text
        plans[name] = resp.json()
    ent = plans["enterprise"]
    assert ent["workflow_id"] == "order-flow"
    assert ent["connection_pattern"] == "direct_service_calls"
    assert ent["central_hub_role"] == "information_provider_only"
    assert [e["step"] for e in ent["coordination_plan"]] == [
        "prices",
        "risk",
        "execute",
        "analyse",
        "report",
    ]
    assert ent["runnable"] is True
    execute = entries(ent)["execute"]
    assert set(execute) >= {
        "service_name",
        "direct_endpoint",
        "backup_endpoints",
        "health_status",
        "tenant_context",
        "call_method",
    }
    assert execute["service_name"] == "trading-engine"
    assert execute["call_method"] == "direct_http_call"
    assert execute["direct_endpoint"] in execute["backup_endpoints"]
    assert sorted(execute["backup_endpoints"]) == sorted([url(19101), url(19102)])
    assert execute["tenant_context"]["tenant_id"] == "t-ent"
    assert execute["tenant_context"]["subscription_tier"] == "enterprise"
    assert execute["health_status"]["circuit"]["state"] == "CLOSED"
    # pro: the enterprise-only service is flagged, never dropped.
    pro = entries(plans["pro"])
    assert plans["pro"]["runnable"] is False
    assert [f["reason"] for f in pro["analyse"]["flags"]] == ["tier_not_allowed"]
    assert pro["analyse"]["direct_endpoint"] is None
    assert pro["report"]["flagged"] is False
    # free: also the step that requires pro.
    free = entries(plans["free"])
    assert {s for s, e in free.items() if e["flagged"]} == {"analyse", "report"}
    assert free["report"]["flags"][0]["required_tier"] == "pro"
    assert len(plans["free"]["coordination_plan"]) == 5


async def test_the_spec_body_carries_the_tenant_context(running_hub: RunningHub) -> None:
    api = running_hub.client
    await register_all(api)
    defined = await api.put("/coordination/workflows/order-flow", json=ORDER_FLOW)
    assert defined.status_code == 201, defined.text
    resp = await api.post(
        "/coordination/workflow/order-flow",
        json={"tenant_id": "t-free", "subscription_tier": "free"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["subscription_tier"] == "free"
    assert entries(resp.json())["report"]["flagged"] is True
    # A tenant token may not assert a tier, in the body as in the headers.
    tenant_api = running_hub.client_with(await running_hub.issue("tenant", tenant_id="t-free"))
    async with tenant_api:
        denied = await tenant_api.post(
            "/coordination/workflow/order-flow", json={"subscription_tier": "enterprise"}
        )
        assert_error(denied, 403, "tenant_mismatch")


async def make_critical(
    running_hub: RunningHub, backend_kind: str, service: str, port: int, instance_id: str
) -> None:
    """Turn one instance critical the way its backend does."""
    hub = running_hub.hub
    if not hub.backend.capabilities.native_health_checks:
        # What the hub's prober writes after failed probes (probing is off in this suite).
        record = {"status": "critical", "last_check": "2026-01-01T00:00:00Z"}
        await hub.backend.put(health_key(service, instance_id), orjson.dumps(record))
        return
    if backend_kind == "consul-contract":
        pytest.skip("the fake Consul agent runs no checks; the live agent's kind covers Consul")
    # The agent checks it itself: the same instance moved to a port nothing listens on,
    # with a 1 s TCP check.
    check = {"kind": "tcp", "interval": 1, "timeout": 0.5, "failures_before_critical": 1}
    await register(running_hub.client, service, port, check=check, instance_id=instance_id)


async def test_unhealthy_step_and_open_circuit_are_flagged(
    running_hub: RunningHub, backend_kind: str
) -> None:
    api = running_hub.client
    await register_all(api)
    risk = await register(api, "risk-check", 19104)
    await api.put("/coordination/workflows/order-flow", json=ORDER_FLOW)
    # Open the market-data circuit for the pro tier only.
    for _ in range(12):
        resp = await api.post(
            "/circuits/market-data/report", json={"success": False, "tier": "pro"}
        )
        assert resp.status_code == 200, resp.text
    pro = entries((await api.post("/coordination/workflow/order-flow", headers=PRO)).json())
    assert [f["reason"] for f in pro["prices"]["flags"]] == ["circuit_open"]
    assert pro["prices"]["health_status"]["circuit"]["state"] == "OPEN"
    assert pro["prices"]["backup_endpoints"] == []
    ent = entries((await api.post("/coordination/workflow/order-flow", headers=ENTERPRISE)).json())
    assert ent["prices"]["flagged"] is False
    await make_critical(running_hub, backend_kind, "risk-check", 19199, risk)
    deadline = time.monotonic() + 15
    while True:
        plan = (await api.post("/coordination/workflow/order-flow", headers=ENTERPRISE)).json()
        if entries(plan)["risk"]["flagged"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    risk_entry = entries(plan)["risk"]
    assert [f["reason"] for f in risk_entry["flags"]] == ["no_healthy_instance"]
    assert risk_entry["health_status"]["status"] == "critical"
    assert plan["runnable"] is False
