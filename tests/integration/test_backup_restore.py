"""Back up an embedded hub under load, restore into real etcd and the Consul stand-in,
and check that the restored hubs answer like the source (issue 14)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import Backend
from adapters.etcd import EtcdBackend
from adapters.sqlite import SQLiteBackend
from facade.coordination.backup_file import Backup, read_backup
from facade.coordination.backups import restore_backup
from tests.conftest import BackendFactory
from tests.etcd_cluster import EtcdCluster
from tests.integration.conftest import RunningHub, running_hub

pytestmark = pytest.mark.slow

TENANTS = ["acme", "globex", "initech"]
ROUNDS = 12


async def _provision(api: httpx.AsyncClient) -> dict[str, str]:
    tokens = {}
    for n, tenant in enumerate(TENANTS):
        tier = ["free", "pro", "enterprise"][n]
        resp = await api.post("/tenants", json={"tenant_id": tenant, "subscription_tier": tier})
        assert resp.status_code == 201, resp.text
        resp = await api.post(
            "/tokens", json={"role": "tenant", "name": tenant, "tenant_id": tenant}
        )
        assert resp.status_code == 201, resp.text
        tokens[tenant] = resp.json()["token"]
    await api.put("/config", json={"features": {"global_flag": True}})
    await api.put("/config/tiers/pro", json={"features": {"beta": True}})
    resp = await api.post("/tenants/acme/resources/storage/allocate", json={"amount": 7})
    assert resp.status_code == 200, resp.text
    return tokens


async def _backup(api: httpx.AsyncClient) -> tuple[Backup, bytes]:
    resp = await api.post("/admin/backups")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/gzip"
    backup = read_backup(resp.content)
    assert int(resp.headers["x-backup-revision"]) == backup.revision
    return backup, resp.content


async def _load(
    api: httpx.AsyncClient, stop: asyncio.Event
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Config writes and registrations until ``stop``: what was acknowledged, and when."""
    configs: list[tuple[str, int]] = []
    registrations: list[tuple[str, int]] = []

    async def config_writer(tenant: str) -> None:
        n = 0
        while not stop.is_set() and n < ROUNDS * 4:
            n += 1
            resp = await api.put(f"/config/{tenant}", json={"features": {f"f{n}": True}})
            assert resp.status_code == 200, resp.text
            configs.append((tenant, int(resp.json()["version"])))

    async def registrar() -> None:
        n = 0
        while not stop.is_set() and n < ROUNDS * 4:
            n += 1
            body = {"name": f"svc{n % 3}", "host": "127.0.0.1", "port": 20000 + n}
            resp = await api.post("/services/register", json=body)
            assert resp.status_code in (200, 201), resp.text
            health = await api.get("/health")
            registrations.append(
                (resp.json()["instance_id"], int(health.json()["view"]["revision"]))
            )

    await asyncio.gather(*(config_writer(t) for t in TENANTS), registrar())
    return configs, registrations


READ_ROUTES = [
    "/tenants",
    *(f"/tenants/{t}" for t in TENANTS),
    *(f"/tenants/{t}/usage" for t in TENANTS),
    *(f"/config/{t}" for t in TENANTS),
    *(f"/config/{t}/history" for t in TENANTS),
    *(f"/config/{t}/overrides" for t in TENANTS),
    "/config",
    "/config/history",
    "/config/tiers/pro",
    "/config/tiers/pro/history",
    "/tokens",
]


async def _answers(api: httpx.AsyncClient, routes: list[str]) -> dict[str, Any]:
    out = {}
    for route in routes:
        resp = await api.get(route)
        assert resp.status_code == 200, (route, resp.text)
        out[route] = _without_volatile(resp.json())
    return out


def _without_volatile(body: Any) -> Any:
    """Drop what legitimately differs between two hubs: freshness flags and clocks."""
    if isinstance(body, dict):
        return {
            k: _without_volatile(v)
            for k, v in body.items()
            if k not in ("stale", "last_used_at", "checked_at", "revision")
        }
    if isinstance(body, list):
        return [_without_volatile(v) for v in body]
    return body


def _without_versions(body: Any) -> Any:
    """For targets whose revisions are their own (Consul): drop version numbers."""
    if isinstance(body, dict):
        return {
            k: _without_versions(v)
            for k, v in body.items()
            if not (k == "version" or k.endswith("_version") or k == "etag")
        }
    if isinstance(body, list):
        return [_without_versions(v) for v in body]
    return body


async def _services(api: httpx.AsyncClient) -> dict[str, list[tuple[str, str, int]]]:
    out = {}
    for name in ("svc0", "svc1", "svc2"):
        resp = await api.get(f"/services/{name}")
        assert resp.status_code == 200, resp.text
        out[name] = sorted(
            (i["instance_id"], i["host"], i["port"]) for i in resp.json()["instances"]
        )
    return out


@pytest.fixture
def fresh_etcd(tmp_path: Path) -> Any:
    """An etcd of its own (revision 1), so a restore can keep the source's revisions."""
    cluster = EtcdCluster(tmp_path / "etcd-restore", size=1).start()
    yield cluster
    cluster.stop()


async def test_backup_under_load_then_restore_into_etcd_and_consul_answers_the_same(
    tmp_path: Path, fresh_etcd: EtcdCluster, consul_contract_backend_factory: BackendFactory
) -> None:
    source_backend = SQLiteBackend(tmp_path / "source", poll_interval=0.02)
    await source_backend.open()
    try:
        async with running_hub(tmp_path / "source", backend=source_backend, probing=False) as src:
            tokens = await _provision(src.client)
            stop = asyncio.Event()
            load = asyncio.create_task(_load(src.client, stop))
            await asyncio.sleep(0.3)
            during, _ = await _backup(src.client)
            await asyncio.sleep(0.2)
            stop.set()
            configs, registrations = await load
            assert any(v > during.revision for _, v in configs), "writes continued after it"

            # Every acknowledged config write at or before the snapshot revision is in it.
            in_backup = {(kv.key, kv.mod_revision) for kv in during.items}
            history_revisions = {
                (key.split("/")[2], rev) for key, rev in in_backup if "/history/" in key
            }
            early = [(t, v) for t, v in configs if v <= during.revision]
            assert early, "some config writes were acknowledged before the snapshot"
            for tenant, version in early:
                assert (tenant, version) in history_revisions, (tenant, version)
            for instance_id, seen_at in registrations:
                if seen_at <= during.revision:
                    assert any(kv.key.endswith(f"/{instance_id}") for kv in during.items)

            # Quiesced: the final backup, and what the source answers.
            final, _ = await _backup(src.client)
            # Quiesced, the only lease-bound keys left are the replica's leader elections
            # (e.g. leader/deployments): no registration of the load had a TTL.
            leased = [kv.key for kv in final.items if kv.lease is not None]
            assert leased == []
            stored = (await source_backend.range("")).items
            elections = [kv.key for kv in stored if kv.lease is not None]
            assert all(key.startswith("leader/") for key in elections), elections
            assert final.header["counts"]["skipped_leased"] == len(elections)
            expected = await _answers(src.client, READ_ROUTES)
            expected_services = await _services(src.client)
    finally:
        await source_backend.close()

    etcd = EtcdBackend(fresh_etcd.endpoints, namespace="hub")
    await etcd.open()
    consul = await consul_contract_backend_factory()
    try:
        for target in (etcd, consul):
            report = await restore_backup(target, final)
            assert report.keys == len(final.items)
            assert report.revisions_kept is (target is etcd)
            await _check_restored(tmp_path, target, expected, expected_services, tokens)
    finally:
        await etcd.close()
        await consul.close()


async def _check_restored(
    tmp_path: Path,
    target: Backend,
    expected: dict[str, Any],
    expected_services: dict[str, Any],
    tokens: dict[str, str],
) -> None:
    workdir = tmp_path / f"hub-{uuid.uuid4().hex[:6]}"
    async with running_hub(workdir, backend=target, probing=False) as restored:
        answers = await _answers(restored.client, READ_ROUTES)
        if target.name == "etcd":
            # Same revisions: the very same versions, ETags and history.
            assert answers == expected
        else:
            assert _without_versions(answers) == _without_versions(expected)
        assert await _services(restored.client) == expected_services
        # Tokens issued by the source (stored as hashes) still authorize.
        for tenant, token in tokens.items():
            async with restored_client(restored, token) as client:
                resp = await client.get(f"/config/{tenant}")
                assert resp.status_code == 200, resp.text


def restored_client(hub: RunningHub, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=hub.app),
        base_url="http://hub",
        headers={"authorization": f"Bearer {token}"},
    )
