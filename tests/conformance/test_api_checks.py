"""Every backend gives a registration without a declared check the same default check.

The default (README, "Health checks"): an HTTP check of the health endpoint for http/https
services, a TTL check when the registration has a TTL, else a TCP connect check. On the
embedded store and etcd the hub's prober runs the instance's stored check; on Consul the
agent runs it, so it must be registered there as a Consul check of the same kind and target.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import RunningHub

DEFAULTS = {
    "interval": 10.0,
    "timeout": 2.0,
    "failures_before_critical": 3,
    "successes_before_passing": 2,
    "degraded_latency_ms": 500.0,
    "deregister_after": None,
}

# (registration fields without "check", expected kind, expected target; {port} filled in)
CASES: list[tuple[dict[str, Any], str, str]] = [
    # The spec's own registration: http with a /health endpoint.
    ({"protocol": "http", "health_endpoint": "/health"}, "http", "http://127.0.0.1:{port}/health"),
    ({"protocol": "https", "health_endpoint": "/ready"}, "http", "https://127.0.0.1:{port}/ready"),
    ({"protocol": "http", "ttl": 30}, "http", "http://127.0.0.1:{port}/health"),
    ({"protocol": "grpc", "ttl": 30}, "ttl", "30s"),
    ({"protocol": "tcp"}, "tcp", "127.0.0.1:{port}"),
    ({"protocol": "grpc"}, "tcp", "127.0.0.1:{port}"),
]


async def _agent_checks(running_hub: RunningHub) -> dict[str, dict[str, Any]]:
    """GET /v1/agent/checks from the agent the hub's Consul backend talks to."""
    backend: Any = running_hub.hub.backend
    headers = {"X-Consul-Token": backend.token} if backend.token else {}
    async with httpx.AsyncClient(base_url=backend.address, headers=headers, timeout=10) as agent:
        resp = await agent.get("/v1/agent/checks")
        assert resp.status_code == 200, resp.text
        checks: dict[str, dict[str, Any]] = resp.json()
        return checks


def _agent_target(check: dict[str, Any], kind: str) -> str | None:
    """The target in a check's ``Definition`` (Consul 1.8 leaves it empty; newer fill it)."""
    definition = check.get("Definition") or {}
    field = {"http": "HTTP", "tcp": "TCP", "ttl": "TTL"}[kind]
    value = definition.get(field)
    return str(value) if value else None


@pytest.mark.parametrize(
    ("fields", "kind", "target"),
    CASES,
    ids=["http-spec", "https", "http-with-ttl", "grpc-with-ttl", "tcp", "grpc"],
)
async def test_a_registration_without_a_check_gets_the_same_default_check_everywhere(
    running_hub: RunningHub, fields: dict[str, Any], kind: str, target: str
) -> None:
    api = running_hub.client
    port = 18000 + CASES.index((fields, kind, target))
    resp = await api.post(
        "/services/register",
        json={"name": "default-checked", "host": "127.0.0.1", "port": port, **fields},
    )
    assert resp.status_code in (200, 201), resp.text
    iid = resp.json()["instance_id"]

    # What the hub says the check is: the same on every backend.
    described = await api.get("/services/default-checked")
    assert described.status_code == 200, described.text
    (instance,) = described.json()["instances"]
    assert instance["check"] == {"kind": kind, **DEFAULTS}

    if not running_hub.hub.backend.capabilities.native_health_checks:
        # The hub's prober runs exactly that stored check (tests/integration probe it).
        return
    # The backend runs checks itself (Consul): the agent must hold a check of that kind
    # for the instance, starting passing as an unchecked instance does on the other kinds.
    checks = [c for c in (await _agent_checks(running_hub)).values() if c["ServiceID"] == iid]
    assert len(checks) == 1, checks
    (check,) = checks
    assert check["Type"] == kind
    # Registered passing; the agent staggers the first run at random within the interval
    # and nothing listens on the port, so by now that run may have failed it (Consul
    # 1.8.7 ignores FailuresBeforeCritical): then its output says it ran and why.
    assert check["Status"] == "passing" or (
        check["Status"] == "critical" and check.get("Output")
    ), check
    shown = _agent_target(check, kind)
    if shown is not None:
        assert shown == target.format(port=port)


async def test_heartbeats_keep_a_default_ttl_check_passing_everywhere(
    running_hub: RunningHub,
) -> None:
    # A TTL instance (here the default check of a grpc service with a TTL) is healthy while
    # it heartbeats through the hub, on every backend: on Consul the agent's TTL check must
    # be passed by those heartbeats, or Consul turns it critical one TTL after registering.
    # Tied to observed state: a machine stalled for longer than the TTL after a beat may
    # rightly turn it critical or expire it; that attempt starts over (bounded).
    api = running_hub.client
    ttl = 2
    loop = asyncio.get_running_loop()
    for _attempt in range(5):
        body = {"name": "ttl-checked", "host": "127.0.0.1", "port": 18100, "protocol": "grpc"}
        resp = await api.post("/services/register", json={**body, "ttl": ttl})
        assert resp.status_code in (200, 201), resp.text
        iid = resp.json()["instance_id"]
        registered = last_beat_sent = loop.time()
        stalled = False
        while loop.time() - registered <= 3 * ttl:
            sent = loop.time()
            beat = await api.put(f"/services/ttl-checked/instances/{iid}/heartbeat")
            health = await api.get("/health/services/ttl-checked")
            answered = loop.time()
            statuses = (
                [i["status"] for i in health.json()["instances"] if i["instance_id"] == iid]
                if health.status_code == 200
                else []
            )
            if beat.status_code != 200 or statuses != ["healthy"]:
                assert answered - last_beat_sent >= ttl, (
                    f"not healthy within the TTL of a heartbeat: {beat.text} {health.text}"
                )
                stalled = True
                break
            last_beat_sent = sent
            await asyncio.sleep(ttl / 10)
        await api.delete(f"/services/ttl-checked/instances/{iid}")
        if not stalled:
            return
    pytest.fail("every attempt stalled for longer than the TTL between heartbeats")
