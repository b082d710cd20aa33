"""Several hub replicas (separate processes) over one store: quotas, push, webhooks.

Run over the embedded store (one SQLite file) and over a real etcd member.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from facade.tenancy.webhooks import verify
from tests.http_helpers import WebhookReceiver, read_events, serve
from tests.processes import HubProcess

pytestmark = pytest.mark.slow


@pytest.fixture(params=["embedded", "etcd"])
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> list[HubProcess]:
    """Three hub processes sharing one store (stopped by the factory by PID).

    ``embedded``: one SQLite store directory; ``etcd``: the session's real etcd member,
    in a namespace of this test's own.
    """
    env = {
        "HUB_LOG_LEVEL": "warning",
        "HUB_WEBHOOK_INITIAL_BACKOFF": "0.05",
        "HUB_WEBHOOK_MAX_ATTEMPTS": "3",
        "HUB_ADMIN_TOKEN": "replicas-admin-" + secrets.token_urlsafe(32),
    }
    if request.param == "embedded":
        env |= {"HUB_BACKEND": "embedded", "HUB_DATA_DIR": str(tmp_path / "store")}
    else:
        etcd = request.getfixturevalue("etcd_server")
        env |= {
            "HUB_BACKEND": "etcd",
            "HUB_ETCD_ENDPOINTS": ",".join(etcd.endpoints),
            "HUB_ETCD_NAMESPACE": f"replicas-{uuid.uuid4().hex}",
        }
    return [hub_processes(workdir=tmp_path / f"hub-{n}", env=env).start() for n in range(3)]


def admin(replicas: list[HubProcess]) -> dict[str, str]:
    """Authorization as the replicas' admin (they share one configured admin token)."""
    return {"authorization": f"Bearer {replicas[0].env['HUB_ADMIN_TOKEN']}"}


async def converged_usage(client: httpx.AsyncClient, hub: HubProcess, expected: int) -> int:
    """The websocket usage a replica reports once it shows ``expected`` (or after 5 s)."""
    used = -1
    for _ in range(100):
        usage = (await client.get(f"{hub.url}/tenants/crowd/usage")).json()
        used = usage["resources"]["websocket_connections"]["used"]
        if used == expected:
            break
        await asyncio.sleep(0.05)
    return int(used)


async def test_concurrent_allocations_from_several_replicas_hit_the_limit_exactly(
    replicas: list[HubProcess],
) -> None:
    async with httpx.AsyncClient(timeout=60, headers=admin(replicas)) as client:
        resp = await client.post(
            f"{replicas[0].url}/tenants", json={"tenant_id": "crowd", "subscription_tier": "pro"}
        )
        assert resp.status_code == 201, resp.text
        # Limit 50 websocket connections (pro); 150 one-unit allocations over 3 replicas.
        calls = [
            client.post(
                f"{replicas[n % 3].url}/tenants/crowd/resources/websocket_connections/allocate"
            )
            for n in range(150)
        ]
        results = await asyncio.gather(*calls)
        statuses = [r.status_code for r in results]
        unexpected = [r.text for r in results if r.status_code not in (200, 429)]
        assert not unexpected
        assert statuses.count(200) == 50
        assert statuses.count(429) == 100
        for r in results:
            if r.status_code == 429:
                details = r.json()["error"]["details"]
                assert details["limit"] == 50
                assert details["current_usage"] <= 50
        for hub in replicas:  # every replica converges on the same usage
            assert await converged_usage(client, hub, 50) == 50

        # Concurrent releases from all replicas never take usage below zero.
        releases = await asyncio.gather(
            *(
                client.post(
                    f"{replicas[n % 3].url}/tenants/crowd/resources/websocket_connections/release",
                    json={"amount": 2},
                )
                for n in range(40)
            )
        )
        statuses = [r.status_code for r in releases]
        assert statuses.count(200) == 25
        assert statuses.count(409) == 15
        for hub in replicas:
            assert await converged_usage(client, hub, 0) == 0


async def test_write_on_one_replica_streams_from_another(replicas: list[HubProcess]) -> None:
    writer, watcher = replicas[0], replicas[2]
    async with httpx.AsyncClient(timeout=30, headers=admin(replicas)) as client:
        created = await client.post(
            f"{writer.url}/tenants", json={"tenant_id": "acme", "subscription_tier": "free"}
        )
        assert created.status_code == 201, created.text
        # The tenant is usable by the very next request on every replica.
        seen = await client.get(f"{watcher.url}/tenants/acme")
        assert seen.status_code == 200, seen.text
        allocated = await client.post(
            f"{replicas[1].url}/tenants/acme/resources/storage/allocate", json={"amount": 5}
        )
        assert allocated.status_code == 200, allocated.text
        assert allocated.json()["limit"] == 100  # the free tier's, not a default guess
        start = (await client.get(f"{watcher.url}/config/acme")).json()["version"]
        started = asyncio.Event()
        reader = asyncio.create_task(
            read_events(client, f"{watcher.url}/config/acme/watch", 2, started=started)
        )
        await asyncio.wait_for(started.wait(), 10)
        written = (
            await client.patch(f"{writer.url}/config/acme", json={"features": {"remote": True}})
        ).json()
        events = await reader
    assert [int(e.id or 0) for e in events] == [start, written["version"]]
    assert events[1].data["config"]["features"]["remote"] is True


async def test_each_version_is_delivered_once_across_replicas(replicas: list[HubProcess]) -> None:
    receiver = WebhookReceiver()
    async with (
        serve(receiver.app()) as receiver_url,
        httpx.AsyncClient(timeout=30, headers=admin(replicas)) as client,
    ):
        hook = (
            await client.post(
                f"{replicas[1].url}/config/webhooks", json={"url": f"{receiver_url}/hook"}
            )
        ).json()
        versions = []
        for n in range(3):
            resp = await client.put(f"{replicas[n].url}/config", json={"features": {"n": n > 0}})
            versions.append(resp.json()["version"])
            await receiver.wait_for(
                lambda got, v=versions[-1]: any(json.loads(r.body)["version"] == v for r in got)
            )
        await asyncio.sleep(0.5)  # room for a duplicate to show up, if the claim were broken
    delivered = [json.loads(r.body)["version"] for r in receiver.received]
    assert delivered == versions
    for r in receiver.received:
        assert verify(hook["secret"], r.body, r.headers["x-hub-signature"])
