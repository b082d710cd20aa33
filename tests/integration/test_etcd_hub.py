"""Real hub processes on real etcd: replicas, TTLs, member loss, quorum loss, late etcd.

Every hub here is a ``central-hub run`` process on a free loopback port, configured only
through its environment (``HUB_BACKEND=etcd``, ``HUB_ETCD_ENDPOINTS``...). Loops are
bounded by a count; nothing here asserts how long something took (figures are printed
and recorded as test properties instead; ``bench/etcd_propagation.py`` measures).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.etcd import EtcdBackend
from tests.etcd_cluster import EtcdCluster, eventually
from tests.processes import ADMIN_HEADERS, HubProcess

pytestmark = pytest.mark.slow

HubFactory = Callable[..., HubProcess]
NEW_RECORD = json.dumps(
    {"instance_id": "fx-new", "service_name": "fx", "host": "127.0.0.1", "port": 9602}
).encode()


@pytest.fixture
def start_hub(
    tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> Callable[..., HubProcess]:
    """Starts hub processes on etcd (stopped by PID afterwards); one namespace per test."""
    namespace = f"it-{uuid.uuid4().hex}"

    def start(endpoints: list[str], name: str, *, wait: bool = True, **env: str) -> HubProcess:
        hub = hub_processes(
            workdir=tmp_path / name,
            env={
                "HUB_BACKEND": "etcd",
                "HUB_ETCD_ENDPOINTS": ",".join(endpoints),
                "HUB_ETCD_NAMESPACE": namespace,
                **env,
            },
        )
        return hub.start(wait=wait)

    return start


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 3-member cluster (these tests crash members)."""
    started = EtcdCluster(tmp_path / "etcd", size=3).start()
    yield started
    started.stop()


async def poll(
    fetch: Callable[[], Awaitable[httpx.Response]],
    done: Callable[[httpx.Response], bool],
    *,
    tries: int = 200,
    interval: float = 0.05,
) -> httpx.Response:
    """``fetch()`` until ``done(answer)``; fails after ``tries`` attempts."""
    answer = await fetch()
    for _ in range(tries):
        if done(answer):
            return answer
        await asyncio.sleep(interval)
        answer = await fetch()
    raise AssertionError(f"condition not reached; last answer {answer.status_code}: {answer.text}")


def registration(name: str, port: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, **fields}


def instance_ids(answer: httpx.Response) -> set[str]:
    if answer.status_code != 200:
        return set()
    return {e["instance_id"] for e in answer.json()["endpoints"]}


async def test_two_replicas_share_registrations_deletions_and_config(
    etcd_server: EtcdCluster, start_hub: HubFactory
) -> None:
    a = start_hub(etcd_server.endpoints, "a")
    b = start_hub(etcd_server.endpoints, "b")
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as http:
        created = await http.post(f"{a.url}/services/register", json=registration("pricing", 9101))
        assert created.status_code == 201, created.text
        instance = created.json()["instance_id"]
        seen = await poll(
            lambda: http.get(f"{b.url}/services/discover/pricing"),
            lambda r: instance in instance_ids(r),
        )
        assert seen.json()["recommended_endpoint"] == "http://127.0.0.1:9101"
        assert seen.json()["stale"] is False
        assert "x-hub-stale" not in seen.headers
        # Registered on B, visible on A too.
        other = await http.post(f"{b.url}/services/register", json=registration("pricing", 9102))
        assert other.status_code == 201, other.text
        await poll(
            lambda: http.get(f"{a.url}/services/discover/pricing"),
            lambda r: instance_ids(r) == {instance, other.json()["instance_id"]},
        )
        gone = await http.delete(f"{a.url}/services/pricing/instances/{instance}")
        assert gone.status_code == 200, gone.text
        await poll(
            lambda: http.get(f"{b.url}/services/discover/pricing"),
            lambda r: instance_ids(r) == {other.json()["instance_id"]},
        )
        await http.delete(f"{b.url}/services/pricing/instances/{other.json()['instance_id']}")
        missing = await poll(
            lambda: http.get(f"{a.url}/services/discover/pricing"),
            lambda r: r.status_code == 404,
        )
        assert missing.json()["error"]["code"] == "service_not_found"
        # Configuration written through A is what B serves, version and all.
        written = await http.put(f"{a.url}/config", json={"features": {"beta": True}})
        assert written.status_code == 200, written.text
        version = written.json()["version"]
        served = await poll(
            lambda: http.get(f"{b.url}/config"),
            lambda r: r.status_code == 200 and r.json()["version"] == version,
        )
        assert served.json()["config"] == {"features": {"beta": True}}


async def test_a_lapsed_ttl_removes_the_instance_on_every_replica(
    etcd_server: EtcdCluster, start_hub: HubFactory
) -> None:
    a = start_hub(etcd_server.endpoints, "a")
    b = start_hub(etcd_server.endpoints, "b")
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as http:
        short = await http.post(
            f"{a.url}/services/register", json=registration("quotes", 9201, ttl=1)
        )
        kept = await http.post(
            f"{a.url}/services/register", json=registration("quotes", 9202, ttl=2)
        )
        assert (short.status_code, kept.status_code) == (201, 201)
        short_id, kept_id = short.json()["instance_id"], kept.json()["instance_id"]
        await poll(
            lambda: http.get(f"{b.url}/services/discover/quotes"),
            lambda r: instance_ids(r) == {short_id, kept_id},
        )
        # Heartbeats through B keep the second alive; nobody renews the first.
        for _ in range(8):
            beat = await http.put(f"{b.url}/services/quotes/instances/{kept_id}/heartbeat")
            assert beat.status_code == 200, beat.text
            await asyncio.sleep(0.5)
        for replica in (a, b):
            answer = await poll(
                functools.partial(http.get, f"{replica.url}/services/discover/quotes"),
                lambda r: instance_ids(r) == {kept_id},
            )
            assert answer.json()["stale"] is False
        # Stop the heartbeats: the lease lapses and both replicas drop the instance.
        for replica in (a, b):
            await poll(
                functools.partial(http.get, f"{replica.url}/services/discover/quotes"),
                lambda r: r.status_code == 404,
                tries=300,
            )


async def test_leader_loss_under_load_loses_no_acknowledged_registration(
    cluster: EtcdCluster, start_hub: HubFactory, record_property: Callable[[str, Any], None]
) -> None:
    a = start_hub(cluster.endpoints, "a")
    b = start_hub(list(reversed(cluster.endpoints)), "b")
    acknowledged: set[str] = set()
    refused: list[int] = []
    discovery_failures: list[str] = []
    discoveries = 0
    kill_at = 40  # registrations before the kill
    wanted_after_kill = 40  # acknowledged registrations after it (writes resumed and stay up)
    max_attempts = 600
    acks_after_kill = 0
    attempts = 0
    killed_at = 0.0
    first_ack_after_kill: float | None = None
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as http:
        base = await http.post(f"{a.url}/services/register", json=registration("orders", 9300))
        assert base.status_code == 201, base.text
        acknowledged.add(base.json()["instance_id"])
        for replica in (a, b):
            await poll(
                functools.partial(http.get, f"{replica.url}/services/discover/orders"),
                lambda r: r.status_code == 200,
            )
        writing = True

        async def discover_forever() -> None:
            nonlocal discoveries
            while writing:
                for replica in (a, b):
                    answer = await http.get(f"{replica.url}/services/discover/orders")
                    discoveries += 1
                    if answer.status_code != 200:
                        discovery_failures.append(f"{answer.status_code} {answer.text}")
                await asyncio.sleep(0.01)

        reader = asyncio.create_task(discover_forever())
        for i in range(1, max_attempts + 1):
            attempts = i
            if i == kill_at:
                leader = cluster.leader()
                cluster.kill(leader)
                killed_at = time.monotonic()
            answer = await http.post(
                f"{a.url}/services/register", json=registration("orders", 9300 + i)
            )
            if answer.status_code == 201:
                acknowledged.add(answer.json()["instance_id"])
                if killed_at:
                    acks_after_kill += 1
                    if first_ack_after_kill is None:
                        first_ack_after_kill = time.monotonic() - killed_at
            else:
                assert answer.status_code == 503, answer.text
                refused.append(i)
            if acks_after_kill >= wanted_after_kill:
                break
            await asyncio.sleep(0.02)
        writing = False
        await reader
        for replica in (a, b):
            await poll(
                functools.partial(http.get, f"{replica.url}/services/discover/orders"),
                lambda r: acknowledged <= instance_ids(r),
            )
    print(
        f"leader killed; {len(refused)} of {attempts} registrations refused, writes resumed "
        f"{first_ack_after_kill}s after the kill; {discoveries} discoveries"
    )
    record_property("writes_resumed_after_s", first_ack_after_kill)
    record_property("refused_registrations", len(refused))
    assert discovery_failures == []
    assert acks_after_kill >= wanted_after_kill, "writes did not resume after the leader died"


async def test_quorum_loss_serves_stale_reads_refuses_writes_and_recovers(
    cluster: EtcdCluster, start_hub: HubFactory, record_property: Callable[[str, Any], None]
) -> None:
    a = start_hub(cluster.endpoints, "a")
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as http:
        base = await http.post(f"{a.url}/services/register", json=registration("risk", 9400))
        assert base.status_code == 201, base.text
        survivor, *lost = cluster.members
        for member in lost:
            cluster.kill(member)
        survivor.wait_leaderless()
        stale = await poll(
            lambda: http.get(f"{a.url}/services/discover/risk"),
            lambda r: r.status_code == 200 and r.json()["stale"] is True,
        )
        assert stale.headers["x-hub-stale"] == "true"
        assert stale.json()["recommended_endpoint"] == "http://127.0.0.1:9400"
        started = time.monotonic()
        refused = await http.post(f"{a.url}/services/register", json=registration("risk", 9401))
        elapsed = time.monotonic() - started
        print(f"write refused during quorum loss after {elapsed:.3f}s")
        record_property("refused_write_s", round(elapsed, 3))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "backend_no_quorum"
        assert "no quorum" in refused.json()["error"]["message"]
        health = await http.get(f"{a.url}/health")
        assert health.json()["status"] == "degraded"
        for member in lost:
            cluster.restart(member, wait=False)
        cluster.wait_healthy()
        # The same process catches up: fresh, and it serves a write made elsewhere.
        b = start_hub(cluster.endpoints, "b")
        later = await http.post(f"{b.url}/services/register", json=registration("risk", 9402))
        assert later.status_code == 201, later.text
        caught_up = await poll(
            lambda: http.get(f"{a.url}/services/discover/risk"),
            lambda r: (
                r.status_code == 200
                and r.json()["stale"] is False
                and later.json()["instance_id"] in instance_ids(r)
            ),
            tries=400,
        )
        assert "x-hub-stale" not in caught_up.headers
        # Nothing half-written: the refused registration never appeared.
        assert instance_ids(caught_up) == {base.json()["instance_id"], later.json()["instance_id"]}
        assert (await http.get(f"{a.url}/health")).json()["status"] == "healthy"


async def test_hub_starts_without_etcd_reports_unhealthy_and_recovers(
    tmp_path: Path, start_hub: HubFactory
) -> None:
    late = EtcdCluster(tmp_path / "late-etcd", size=1)  # addresses chosen, not started
    a = start_hub(late.endpoints, "a", HUB_VIEW_START_TIMEOUT="1")
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as http:
        health = await http.get(f"{a.url}/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["backend"]["reachable"] is False
        refused = await http.post(f"{a.url}/services/register", json=registration("late", 9500))
        assert refused.status_code == 503
        late.start()
        try:
            await poll(
                lambda: http.get(f"{a.url}/health"),
                lambda r: r.status_code == 200 and r.json()["status"] == "healthy",
                tries=400,
            )
            created = await http.post(f"{a.url}/services/register", json=registration("late", 9500))
            assert created.status_code == 201, created.text
            found = await http.get(f"{a.url}/services/discover/late")
            assert instance_ids(found) == {created.json()["instance_id"]}
        finally:
            late.stop()


async def test_a_hub_behind_compaction_resyncs_by_itself(
    cluster: EtcdCluster, start_hub: HubFactory
) -> None:
    watched, other, _ = cluster.members
    a = start_hub([watched.client_url], "a")
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as http:
        kept = await http.post(f"{a.url}/services/register", json=registration("fx", 9600))
        dropped = await http.post(f"{a.url}/services/register", json=registration("fx", 9601))
        assert (kept.status_code, dropped.status_code) == (201, 201)
        namespace = a.env["HUB_ETCD_NAMESPACE"]
        cluster.kill(watched)  # hub A's only endpoint: its watch stops
        writer = EtcdBackend([other.client_url], namespace=namespace)
        await writer.open()
        try:
            added = await eventually(lambda: writer.put_instance("fx", "fx-new", NEW_RECORD))
            await writer.delete_instance("fx", dropped.json()["instance_id"])
            await writer.compact(await writer.current_revision())
        finally:
            await writer.close()
        cluster.restart(watched)
        caught_up = await poll(
            lambda: http.get(f"{a.url}/services/discover/fx"),
            lambda r: (
                instance_ids(r) == {kept.json()["instance_id"], "fx-new"}
                and r.json()["stale"] is False
            ),
            tries=400,
        )
        assert caught_up.status_code == 200
        health = (await http.get(f"{a.url}/health")).json()
        assert health["view"]["revision"] >= added
