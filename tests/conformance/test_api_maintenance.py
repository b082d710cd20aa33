"""Read-only (maintenance) mode over every backend: two replicas, every write route,
heartbeats and reads (issue 14, the pause ``central-hub migrate`` needs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from facade import create_app
from facade.coordination.backups import create_backup
from facade.coordination.maintenance import MAINTENANCE_KEY, MAINTENANCE_PATH, is_allowed
from facade.runtime import Hub
from facade.state.leader_election import LEADER_PREFIX
from tests.conformance.conftest import RunningHub, assert_error
from tests.conformance.test_api_security import SAMPLE_PATH_PARAMS

ON = {"read_only": True, "reason": "migrating to etcd", "retry_after": 7}


@pytest.fixture
async def replica_b(running_hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """A second hub replica over the same backend (its own view and watch), as admin."""
    app = create_app(running_hub.hub.settings, backend=running_hub.hub.backend)
    hub: Hub = app.state.hub
    await hub.start()
    headers = dict(running_hub.client.headers)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://replica-b.test", headers=headers
    ) as client:
        yield client
    await hub.stop()


async def until_read_only(client: httpx.AsyncClient, expected: bool) -> None:
    """Wait (bounded: 5 s) until the replica behind ``client`` reports ``expected``."""
    for _ in range(500):
        if (await client.get(MAINTENANCE_PATH)).json()["read_only"] is expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the replica never reported read_only={expected}")


async def test_on_through_replica_a_refuses_writes_on_replica_b(
    running_hub: RunningHub, replica_b: httpx.AsyncClient
) -> None:
    a = running_hub.client
    body = {"name": "quotes", "host": "127.0.0.1", "port": 18601, "ttl": 30}
    registered = await a.post("/services/register", json=body)
    assert registered.status_code in (200, 201), registered.text
    instance_id = registered.json()["instance_id"]
    assert (
        await a.post("/tenants", json={"tenant_id": "before", "subscription_tier": "pro"})
    ).status_code == 201

    on = await a.put(MAINTENANCE_PATH, json=ON)
    assert on.status_code == 200, on.text
    assert on.json()["read_only"] is True
    assert on.json()["replica"]["drained"] is True
    await until_read_only(replica_b, True)

    refused = await replica_b.post(
        "/tenants", json={"tenant_id": "during", "subscription_tier": "pro"}
    )
    error = assert_error(refused, 503, "read_only")
    assert error["details"]["reason"] == "migrating to etcd"
    assert refused.headers["retry-after"] == "7"
    assert_error(await a.put("/config", json={"config": {"x": 1}}), 503, "read_only")
    # Nothing was half-written: the refused tenant exists on neither replica.
    for client in (a, replica_b):
        assert_error(await client.get("/tenants/during"), 404, "tenant_not_found")

    # Reads and heartbeats keep working on both replicas.
    for client in (a, replica_b):
        assert (await client.get("/services/")).status_code == 200
        assert (await client.get("/tenants/before")).status_code == 200
        assert (await client.get("/config/before")).status_code == 200
        found = await client.post("/services/discover", json={"service": "quotes"})
        assert found.status_code == 200, found.text
        beat = await client.put(f"/services/quotes/instances/{instance_id}/heartbeat")
        assert beat.status_code == 200, beat.text

    off = await replica_b.delete(MAINTENANCE_PATH)
    assert off.status_code == 200, off.text
    assert off.json()["read_only"] is False
    assert off.json()["read_only_seconds"] >= 0
    await until_read_only(a, False)
    assert (
        await a.post("/tenants", json={"tenant_id": "after", "subscription_tier": "pro"})
    ).status_code == 201
    # Off twice is not an error.
    assert (await a.delete(MAINTENANCE_PATH)).json()["read_only"] is False


def state(items: list[Any]) -> dict[str, bytes]:
    """The hub's state without the keys a write refusal cannot be blamed for."""
    return {kv.key: kv.value for kv in items if not kv.key.startswith(LEADER_PREFIX)}


async def test_every_write_route_is_refused_and_writes_nothing(running_hub: RunningHub) -> None:
    api = running_hub.client
    assert (
        await api.post("/tenants", json={"tenant_id": "tenant-b", "subscription_tier": "pro"})
    ).status_code == 201
    assert (await api.put(MAINTENANCE_PATH, json=ON)).status_code == 200
    before = state((await create_backup(running_hub.hub.backend)).items)
    assert MAINTENANCE_KEY not in before  # a backup never carries the mode to a target

    refused, served = [], []
    for template, operations in running_hub.app.openapi()["paths"].items():
        path = template
        for name, value in SAMPLE_PATH_PARAMS.items():
            path = path.replace("{" + name + "}", value)
        for method in (m.upper() for m in operations):
            if method == "GET":
                continue
            resp = await api.request(method, path, json={})
            if is_allowed(method, path):
                served.append((method, template))
                assert resp.status_code != 503, (method, template, resp.text)
            else:
                refused.append((method, template))
                assert_error(resp, 503, "read_only")
    assert len(refused) >= 20
    assert ("POST", "/services/register") in refused
    assert ("POST", "/tokens") in refused
    assert ("PUT", "/services/{name}/instances/{instance_id}/heartbeat") in served
    assert ("PUT", MAINTENANCE_PATH) in served
    after = state((await create_backup(running_hub.hub.backend)).items)
    assert after == before

    assert (await api.delete(MAINTENANCE_PATH)).status_code == 200


async def test_maintenance_routes_are_admin_only_and_validated(running_hub: RunningHub) -> None:
    api = running_hub.client
    assert_error(await api.put(MAINTENANCE_PATH, json={"reason": "x"}), 422, "invalid_request")
    bad = ON | {"retry_after": 0}
    assert_error(await api.put(MAINTENANCE_PATH, json=bad), 422, "invalid_request")
    reader = await running_hub.issue("read-only")
    async with running_hub.client_with(reader) as client:
        for method in ("GET", "PUT", "DELETE"):
            resp = await client.request(method, MAINTENANCE_PATH, json=ON)
            assert_error(resp, 403, "forbidden")
    assert (await api.get(MAINTENANCE_PATH)).json()["read_only"] is False
