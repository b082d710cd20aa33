"""Deployments over every backend kind: the state machine driven by the elected replica.

The executor is played by the test itself (deregister the drained instance, register
its replacement with the target version), as docs/deployments.md describes; the real
process executor is exercised in tests/e2e. Probing is off in this suite, so a registered
instance counts as healthy until a health record says otherwise.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from facade.state.catalog import health_key
from tests.conformance.conftest import RunningHub, assert_error

BASE = 19200
LISTENING: dict[int, int] = {}
"""Test port -> a real listening port: Consul's agent checks instances itself, so they
must answer a TCP check (a listening socket completes the handshake without accept)."""


@pytest.fixture(autouse=True)
def listening_ports() -> Iterator[None]:
    sockets = []
    for offset in [*range(4), *range(10, 14)]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sockets.append(sock)
        LISTENING[BASE + offset] = sock.getsockname()[1]
    yield
    LISTENING.clear()
    for sock in sockets:
        sock.close()


async def register(api: httpx.AsyncClient, port: int, version: str, **extra: Any) -> str:
    body = {
        "name": "trading-engine",
        "host": "127.0.0.1",
        "port": LISTENING.get(port, port),
        "version": version,
        "check": {"kind": "tcp"},
    }
    resp = await api.post("/services/register", json=body | extra)
    assert resp.status_code in (200, 201), resp.text
    instance_id: str = resp.json()["instance_id"]
    return instance_id


async def until(
    api: httpx.AsyncClient, deployment_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The deployment once ``check`` holds (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        record: dict[str, Any] = (await api.get(f"/deployments/{deployment_id}")).json()
        if check(record):
            return record
        assert time.monotonic() < deadline, f"never held; last record: {record}"
        await asyncio.sleep(0.05)


async def draining(api: httpx.AsyncClient) -> set[str]:
    svc = (await api.get("/services/trading-engine")).json()
    return {i["instance_id"] for i in svc["instances"] if i["draining"]}


async def offered(api: httpx.AsyncClient) -> set[str]:
    found = (await api.get("/services/discover/trading-engine")).json()
    return {e["instance_id"] for e in found["endpoints"]}


async def replace(api: httpx.AsyncClient, old: list[str], ports: list[int], version: str) -> None:
    """The executor's part: stop the drained instances and start the new version."""
    for iid in old:
        assert (await api.delete(f"/services/trading-engine/instances/{iid}")).status_code == 200
    for port in ports:
        await register(api, port, version)


async def test_rolling_update_in_batches(api: httpx.AsyncClient) -> None:
    v1 = [await register(api, BASE + n, "v1") for n in range(4)]
    resp = await api.post(
        "/deployments",
        json={
            "service": "trading-engine",
            "version": "v2.1.0",
            "strategy": "rolling",
            "batch_size": 2,
            "min_healthy_seconds": 0.2,
        },
    )
    assert resp.status_code == 201, resp.text
    dep = resp.json()
    assert dep["plan"] == [sorted(v1)[:2], sorted(v1)[2:]]
    assert dep["state"] == "running"
    assert dep["previous_version"] == "v1"
    again = await api.post("/deployments", json={"service": "trading-engine", "version": "v3"})
    assert_error(again, 409, "deployment_conflict")
    first, second = dep["plan"]
    await until(api, dep["id"], lambda d: d["batch"] is not None)
    assert await draining(api) == set(first)
    assert await offered(api) == set(second)  # discovery drops draining instances at once
    svc = (await api.get("/services/trading-engine")).json()
    marked = [i for i in svc["instances"] if i["draining"]]
    assert {i["desired_version"] for i in marked} == {"v2.1.0"}
    await replace(api, first, [BASE + 10, BASE + 11], "v2.1.0")
    await until(api, dep["id"], lambda d: d["batch"] is not None and d["batch"]["index"] == 1)
    assert await draining(api) == set(second)
    assert len(await offered(api)) == 2
    await replace(api, second, [BASE + 12, BASE + 13], "v2.1.0")
    done = await until(api, dep["id"], lambda d: d["state"] == "succeeded")
    kinds = [e["type"] for e in done["events"]]
    assert kinds.count("draining") == 4
    assert kinds.count("batch_completed") == 2
    assert kinds[-1] == "succeeded"
    drained = [e for e in done["events"] if e["type"] == "draining"]
    assert {(e["host"], e["version"]) for e in drained} == {("127.0.0.1", "v1")}
    svc = (await api.get("/services/trading-engine")).json()
    assert {i["version"] for i in svc["instances"]} == {"v2.1.0"}
    assert await draining(api) == set()
    listed = (await api.get("/deployments", params={"state": "succeeded"})).json()
    assert [d["id"] for d in listed["deployments"]] == [dep["id"]]
    # The service is free for the next deployment.
    nxt = await api.post("/deployments", json={"service": "trading-engine", "version": "v3"})
    assert nxt.status_code == 201, nxt.text
    # SSE: the history from an event on (resumable), ending after the last event.
    await api.post(f"/deployments/{nxt.json()['id']}/abort")
    stream = await api.get(f"/deployments/{dep['id']}/events", headers={"last-event-id": "3"})
    ids = [int(line[4:]) for line in stream.text.splitlines() if line.startswith("id: ")]
    assert ids == [e["seq"] for e in done["events"] if e["seq"] > 3]


FAST_CHECK = {"kind": "tcp", "interval": 1, "timeout": 0.5, "failures_before_critical": 1}


async def make_critical(running_hub: RunningHub, backend_kind: str, iid: str) -> None:
    """Turn an instance registered with FAST_CHECK on a dead port critical."""
    hub = running_hub.hub
    if not hub.backend.capabilities.native_health_checks:
        # What the hub's prober writes after failed probes (probing is off in this suite).
        record = {"status": "critical", "last_check": "2026-01-01T00:00:00Z"}
        await hub.backend.put(health_key("trading-engine", iid), orjson.dumps(record))
    elif backend_kind == "consul-contract":
        pytest.skip("the fake Consul agent runs no checks; the live agent's kind covers Consul")
    # On a live Consul the agent's own check of the dead port turns it critical.


async def test_a_failing_new_version_stops_the_deployment(
    running_hub: RunningHub, backend_kind: str
) -> None:
    api = running_hub.client
    for n in range(4):
        await register(api, BASE + n, "v1")
    body = {
        "service": "trading-engine",
        "version": "v2",
        "batch_size": 2,
        "min_healthy_seconds": 30,
    }
    dep = (await api.post("/deployments", json=body)).json()
    first, second = dep["plan"]
    await until(api, dep["id"], lambda d: d["batch"] is not None)
    for iid in first:
        await api.delete(f"/services/trading-engine/instances/{iid}")
    bad = await register(api, BASE + 99, "v2", check=FAST_CHECK)  # nothing listens there
    await make_critical(running_hub, backend_kind, bad)
    failed = await until(api, dep["id"], lambda d: d["state"] == "failed")
    rollback = [e for e in failed["events"] if e["type"] == "rollback"]
    assert rollback
    assert rollback[0]["previous_version"] == "v1"
    assert bad in {i["instance_id"] for i in rollback[0]["instances"]}
    assert "health check" in failed["reason"]
    # Later batches untouched: the v1 instances still serve and are not draining.
    assert set(second) <= await offered(api)
    assert await draining(api) == set()


async def test_pause_resume_abort_and_the_last_healthy_instance(api: httpx.AsyncClient) -> None:
    only = await register(api, BASE, "v1")
    dep = (
        await api.post("/deployments", json={"service": "trading-engine", "version": "v2"})
    ).json()
    # One instance: draining it would leave nothing healthy, so the deployment waits.
    waiting = await until(
        api, dep["id"], lambda d: any(e["type"] == "waiting" for e in d["events"])
    )
    assert waiting["batch"] is None
    assert await offered(api) == {only}
    paused = await api.post(f"/deployments/{dep['id']}/pause")
    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert_error(await api.post(f"/deployments/{dep['id']}/pause"), 409, "deployment_conflict")
    await register(api, BASE + 1, "v2")  # a healthy replacement appears while paused
    await asyncio.sleep(0.5)
    assert await draining(api) == set()  # paused: nothing happens
    assert (await api.post(f"/deployments/{dep['id']}/resume")).json()["state"] == "running"
    await until(api, dep["id"], lambda d: d["batch"] is not None)
    assert await draining(api) == {only}
    aborted = (await api.post(f"/deployments/{dep['id']}/abort")).json()
    assert aborted["state"] == "aborted"
    assert [e["type"] for e in aborted["events"]][-2:] == ["rollback", "aborted"]
    assert await draining(api) == set()  # the old instance serves again
    assert_error(await api.post(f"/deployments/{dep['id']}/resume"), 409, "deployment_conflict")
    assert_error(await api.get("/deployments/dep-1-abcdef"), 404, "deployment_not_found")


async def test_bad_requests(api: httpx.AsyncClient) -> None:
    await register(api, BASE, "v2")
    cases = [
        {"service": "nowhere", "version": "v2"},
        {"service": "trading-engine", "version": "v2"},  # nothing to replace
        {"service": "trading-engine", "version": "v3", "batch_size": 0},
        {"service": "trading-engine", "version": "bad version"},
        {"service": "trading-engine", "version": "v3", "strategy": "blue-green"},
        {"service": "trading-engine", "version": "v3", "max_failure_rate": 2},
    ]
    codes = [(await api.post("/deployments", json=body)).status_code for body in cases]
    assert codes == [404, 422, 422, 422, 422, 422]
    assert (await api.get("/deployments")).json()["count"] == 0


async def versions_for(api: httpx.AsyncClient, tenant: str | None) -> set[str]:
    headers = {"x-tenant-id": tenant} if tenant else {}
    found = (await api.get("/services/discover/trading-engine", headers=headers)).json()
    return set(found["versions"])


async def test_canary_by_tenant_and_share_then_promote(api: httpx.AsyncClient) -> None:
    for n in range(4):
        await register(api, BASE + n, "v1")
    body = {
        "service": "trading-engine",
        "version": "v2",
        "strategy": "canary",
        "batch_size": 2,
        "min_healthy_seconds": 0.2,
        "tenants": ["t-canary"],
        "weight_percent": 50,
    }
    resp = await api.post("/deployments", json=body)
    assert resp.status_code == 201, resp.text
    dep = resp.json()
    first, second = dep["plan"]
    await until(api, dep["id"], lambda d: d["batch"] is not None)
    await replace(api, first, [BASE + 10, BASE + 11], "v2")
    canary = await until(api, dep["id"], lambda d: d["state"] == "canary")
    assert canary["events"][-1]["type"] == "canary"
    assert await draining(api) == set()  # holding: nothing else drains until promote
    # The listed tenant is always offered the new version; others get a share of it.
    for _ in range(20):
        assert await versions_for(api, "t-canary") == {"v2"}
    seen = [await versions_for(api, "t-other") for _ in range(100)]
    assert {"v1"} in seen
    assert {"v2"} in seen
    assert all(len(v) == 1 for v in seen)
    promoted = await api.post(f"/deployments/{dep['id']}/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["state"] == "running"
    assert await versions_for(api, "t-other") == {"v1", "v2"}  # routing gone at once
    await until(api, dep["id"], lambda d: d["batch"] is not None and d["batch"]["index"] == 1)
    await replace(api, second, [BASE + 12, BASE + 13], "v2")
    await until(api, dep["id"], lambda d: d["state"] == "succeeded")
    assert_error(await api.post(f"/deployments/{dep['id']}/promote"), 409, "deployment_conflict")


async def test_canary_needs_tenants_or_a_share(api: httpx.AsyncClient) -> None:
    await register(api, BASE, "v1")
    bad = [
        {"service": "trading-engine", "version": "v2", "strategy": "canary"},
        {"service": "trading-engine", "version": "v2", "tenants": ["t1"]},
        {"service": "trading-engine", "version": "v2", "strategy": "canary", "weight_percent": 0},
    ]
    for body in bad:
        assert_error(await api.post("/deployments", json=body), 422, "invalid_request")
