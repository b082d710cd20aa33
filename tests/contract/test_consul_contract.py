"""Contract tests of the Consul backend against a fake agent built from Consul's API docs.

These check what the adapter *sends* (method, path, query, body, ACL token) and that it
reads the documented answers (field names, types, ``X-Consul-Index``, blocking queries)
correctly. They are contract-level: they prove agreement with the documentation as the
fake encodes it, not with a live agent (set ``CONSUL_HTTP_ADDR`` for that; see
docs/consul.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import EventType, WatchEvent, create_backend
from adapters.consul import (
    ConsulBackend,
    record_from_service,
    registration_as_catalog_entry,
    registration_for,
)
from facade import create_app
from facade.settings import load_settings
from shared.errors import (
    BackendPermissionDenied,
    BackendUnavailable,
    InvalidRequest,
    LeaseNotFound,
    RevisionConflict,
)
from tests.contract.fake_consul import FakeConsul
from tests.processes import ADMIN_HEADERS, TEST_ADMIN_TOKEN

PREFIX = "hub-contract/"


@pytest.fixture
def fake() -> Iterator[FakeConsul]:
    server = FakeConsul(acl_tokens={"root-token": "write", "reader-token": "read"})
    server.start()
    yield server
    server.stop()


def address(fake: FakeConsul) -> str:
    return fake.address


@pytest.fixture
async def backend(fake: FakeConsul) -> AsyncIterator[ConsulBackend]:
    opened = ConsulBackend(address(fake), token="root-token", datacenter="dc1", kv_prefix=PREFIX)
    await opened.open()
    yield opened
    await opened.close()


def kv_ops(fake: FakeConsul) -> list[list[dict[str, Any]]]:
    """The KV operations of every transaction sent, in order."""
    return [[op["KV"] for op in r.json()] for r in fake.requests_to("/v1/txn", "PUT")]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def next_events(
    stream: AsyncIterator[WatchEvent], count: int, timeout: float = 10.0
) -> list[WatchEvent]:
    events: list[WatchEvent] = []

    async def run() -> None:
        async for event in stream:
            if event.type is not EventType.PROGRESS:
                events.append(event)
                if len(events) == count:
                    return

    await asyncio.wait_for(run(), timeout)
    return events


# -- KV ---------------------------------------------------------------------------------


async def test_put_sends_a_guarded_transaction_with_base64_value_and_version_flags(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    rev1 = await backend.put("cfg/a", b"\x00one")
    rev2 = await backend.put("cfg/a", b"two")
    first, second = kv_ops(fake)
    assert first == [
        {"Verb": "check-not-exists", "Key": f"{PREFIX}cfg/a"},
        {"Verb": "set", "Key": f"{PREFIX}cfg/a", "Value": b64(b"\x00one"), "Flags": 1},
    ]
    assert second == [
        {"Verb": "check-index", "Key": f"{PREFIX}cfg/a", "Index": rev1},
        {"Verb": "set", "Key": f"{PREFIX}cfg/a", "Value": b64(b"two"), "Flags": 2},
    ]
    kv = await backend.get("cfg/a")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"two", rev1, rev2, 2)
    # Each write first read the key it guards.
    reads = [r for r in fake.requests_to(f"/v1/kv/{PREFIX}cfg/a", "GET")]
    assert len(reads) >= 2


async def test_compare_and_set_uses_modify_index_and_maps_conflicts(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    rev = await backend.put("cas", b"v1", if_revision=0)
    with pytest.raises(RevisionConflict):
        await backend.put("cas", b"v2", if_revision=rev + 7)
    # A stale if_revision is refused before any transaction is sent.
    assert len(kv_ops(fake)) == 1
    drev = await backend.delete("cas", if_revision=rev)
    assert drev is not None
    assert drev > rev
    assert kv_ops(fake)[-1] == [{"Verb": "delete-cas", "Key": f"{PREFIX}cas", "Index": rev}]
    with pytest.raises(InvalidRequest):
        await backend.delete("cas", if_revision=0)


async def test_every_request_carries_the_acl_token_and_datacenter(
    backend: ConsulBackend, fake: FakeConsul, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = await backend.grant_lease(30)
    await backend.put("t", b"x", lease=lease.id)
    await backend.keep_alive(lease.id)
    await backend.revoke_lease(lease.id)
    await backend.put_instance("svc", "svc-1", json.dumps({"host": "127.0.0.1"}).encode())
    await backend.delete_instance("svc", "svc-1")
    sent = [r for r in fake.requests if r.path != "/v1/status/leader"]
    assert sent
    assert {r.token for r in sent} == {"root-token"}
    # Agent endpoints act on the local agent and take no dc; everything else names it.
    for request in sent:
        if not request.path.startswith("/v1/agent/"):
            assert request.query.get("dc") == ["dc1"], request.path


async def test_environment_token_does_not_override_the_configured_one(
    fake: FakeConsul, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "reader-token")
    backend = ConsulBackend(address(fake), token="root-token", kv_prefix=PREFIX)
    await backend.open()
    try:
        await backend.put("k", b"v")
    finally:
        await backend.close()
    assert {r.token for r in fake.requests_to("/v1/txn")} == {"root-token"}


async def test_consul_403_is_permission_denied(fake: FakeConsul) -> None:
    with pytest.raises(BackendPermissionDenied):
        await ConsulBackend(address(fake), token="wrong", kv_prefix=PREFIX).open()
    reader = ConsulBackend(address(fake), token="reader-token", kv_prefix=PREFIX)
    await reader.open()
    try:
        assert await reader.get("k") is None
        with pytest.raises(BackendPermissionDenied):
            await reader.put("k", b"v")
    finally:
        await reader.close()


async def test_unknown_datacenter_and_unreachable_agent_are_unavailable(
    fake: FakeConsul,
) -> None:
    with pytest.raises(BackendUnavailable):
        await ConsulBackend(
            address(fake), token="root-token", datacenter="dc9", kv_prefix=PREFIX
        ).open()
    fake.stop()
    with pytest.raises(BackendUnavailable):
        await ConsulBackend(address(fake), token="root-token", kv_prefix=PREFIX).open()


async def test_feed_uses_blocking_queries_on_the_returned_index(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    rev = await backend.put("w/1", b"x")
    blocking = [
        r
        for r in fake.requests_to(f"/v1/kv/{PREFIX}", "GET")
        if "index" in r.query and "recurse" in r.query
    ]
    assert blocking, "the KV feed sent no blocking query"
    assert all(r.query["wait"] == ["5s"] for r in blocking)
    # The query that saw the write was blocked on an index from an earlier answer ...
    assert any(int(r.query["index"][0]) < rev for r in blocking)
    # ... and the feed then blocks on the index the write produced.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        latest = [
            int(r.query["index"][0])
            for r in fake.requests_to(f"/v1/kv/{PREFIX}", "GET")
            if "index" in r.query and "recurse" in r.query
        ]
        if max(latest) >= rev:
            break
        assert loop.time() < deadline, "the feed never blocked on the write's index"
        await asyncio.sleep(0.02)
    assert max(latest) == rev
    for path in ("/v1/catalog/services", "/v1/health/state/any"):
        assert any("index" in r.query for r in fake.requests_to(path, "GET")), path


# -- leases -----------------------------------------------------------------------------


async def test_lease_is_a_delete_session_and_keys_are_acquired(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    lease = await backend.grant_lease(1)
    assert lease.ttl == 1  # the hub enforces it; Consul's TTL (10s at least) is a backstop
    (create,) = fake.requests_to("/v1/session/create", "PUT")
    assert create.json() == {
        "Name": "central-hub lease",
        "TTL": "10s",
        "Behavior": "delete",
        "LockDelay": "0s",
    }
    other = await backend.grant_lease(30)
    await backend.put("leased", b"a", lease=lease.id)
    await backend.put("leased", b"b", lease=other.id)
    ops = kv_ops(fake)
    session_a = ops[0][0]["Session"]
    session_b = ops[1][0]["Session"]
    assert ops[0][0]["Key"] == f"{PREFIX}.consul/leases/{lease.id}"
    assert ops[2][1] == {
        "Verb": "lock",
        "Key": f"{PREFIX}leased",
        "Value": b64(b"a"),
        "Flags": 1,
        "Session": session_a,
    }
    # Re-binding to another lease unlocks from the old session in the same transaction.
    assert [op["Verb"] for op in ops[3]] == ["check-index", "unlock", "lock"]
    assert (ops[3][1]["Session"], ops[3][2]["Session"]) == (session_a, session_b)
    kv = await backend.get("leased")
    assert kv is not None
    assert kv.lease == other.id
    assert await backend.keep_alive(other.id) == 30
    assert fake.requests_to(f"/v1/session/renew/{session_b}", "PUT")
    await backend.revoke_lease(other.id)
    assert fake.requests_to(f"/v1/session/destroy/{session_b}", "PUT")
    assert await backend.get("leased") is None


async def test_unknown_lease_is_lease_not_found(backend: ConsulBackend) -> None:
    with pytest.raises(LeaseNotFound):
        await backend.keep_alive(12345)
    with pytest.raises(LeaseNotFound):
        await backend.put("k", b"v", lease=12345)
    await backend.revoke_lease(12345)  # unknown leases are ignored


async def test_lease_ids_survive_a_second_backend_on_the_same_prefix(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    lease = await backend.grant_lease(30)
    replica = ConsulBackend(address(fake), token="root-token", datacenter="dc1", kv_prefix=PREFIX)
    await replica.open()
    try:
        assert await replica.keep_alive(lease.id) == 30
        await replica.revoke_lease(lease.id)
    finally:
        await replica.close()
    with pytest.raises(LeaseNotFound):
        await backend.keep_alive(lease.id)


# -- catalog ----------------------------------------------------------------------------

RECORD = {
    "instance_id": "pricing-1",
    "service_name": "pricing",
    "host": "127.0.0.1",
    "port": 8123,
    "protocol": "http",
    "health_endpoint": "/healthz",
    "tenant_capable": True,
    "subscription_requirements": ["pro", "enterprise"],
    "resource_tier": "premium",
    "weight": 3,
    "version": "2.5.0",
    "tags": ["ticks"],
    "meta": {"zone": "a"},
    "ttl": None,
    "registered_at": "2026-11-27T07:00:00Z",
    "check": {"kind": "http", "interval": 5, "timeout": 2, "deregister_after": 60},
}


async def test_put_instance_registers_an_agent_service_with_meta_weights_and_check(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    rev = await backend.put_instance("pricing", "pricing-1", json.dumps(RECORD).encode())
    (register,) = fake.requests_to("/v1/agent/service/register", "PUT")
    assert register.query == {"replace-existing-checks": ["true"]}
    body = register.json()
    assert body == {
        "ID": "pricing-1",
        "Name": "pricing",
        "Tags": ["ticks"],
        "Address": "127.0.0.1",
        "Port": 8123,
        "Meta": {
            "zone": "a",
            "hub-managed": "true",
            "hub-protocol": "http",
            "hub-health-endpoint": "/healthz",
            "hub-resource-tier": "premium",
            "hub-version": "2.5.0",
            "hub-registered-at": "2026-11-27T07:00:00Z",
            "hub-check": '{"deregister_after":60,"interval":5,"kind":"http","timeout":2}',
            "hub-subscription-requirements": "pro,enterprise",
            "hub-tenant-capable": "true",
        },
        "Weights": {"Passing": 3, "Warning": 1},
        "Check": {
            "Name": "central-hub http check",
            "Status": "passing",
            "HTTP": "http://127.0.0.1:8123/healthz",
            "Method": "GET",
            "Interval": "5s",
            "Timeout": "2s",
            "DeregisterCriticalServiceAfter": "60s",
        },
    }
    kv = await backend.get("catalog/pricing/pricing-1")
    assert kv is not None
    assert kv.mod_revision == rev
    stored = json.loads(kv.value)
    assert {k: stored[k] for k in RECORD} == RECORD


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (
            {"kind": "tcp", "interval": 3},
            {"TCP": "127.0.0.1:8123", "Interval": "3s", "Status": "passing"},
        ),
        ({"kind": "ttl", "interval": 15}, {"TTL": "15s", "Status": "passing"}),
        (
            {"kind": "http", "interval": 0.5, "failures_before_critical": 2},
            {
                "HTTP": "http://127.0.0.1:8123/healthz",
                "Method": "GET",
                "Interval": "0.5s",
                "FailuresBeforeCritical": 2,
                "Status": "passing",
            },
        ),
    ],
)
async def test_tcp_and_ttl_checks_are_consul_checks(
    backend: ConsulBackend, fake: FakeConsul, check: dict[str, Any], expected: dict[str, str]
) -> None:
    record = {**RECORD, "check": check}
    await backend.put_instance("pricing", "pricing-1", json.dumps(record).encode())
    (register,) = fake.requests_to("/v1/agent/service/register", "PUT")
    sent = register.json()["Check"]
    sent.pop("Name")
    assert sent == expected


async def test_consul_check_status_becomes_hub_health_events(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    rev = await backend.put_instance("pricing", "pricing-1", json.dumps(RECORD).encode())
    stream = backend.watch("health/pricing/", start_revision=rev)
    (first,) = await next_events(stream, 1)
    # The hub registers checks passing (Consul's default would be critical), so a new
    # instance is healthy until its first check says otherwise, as on every backend.
    assert json.loads(first.value or b"")["status"] == "healthy"
    (check_id,) = fake.check_ids("pricing-1")
    seen = []
    for consul_status, hub_status in [
        ("warning", "degraded"),
        ("critical", "critical"),
        ("passing", "healthy"),
    ]:
        fake.set_check(check_id, consul_status, f"HTTP GET: {consul_status}")
        (event,) = await next_events(stream, 1)
        health = json.loads(event.value or b"")
        assert event.key == "health/pricing/pricing-1"
        assert health["status"] == hub_status
        assert consul_status in health["output"]
        assert set(health) == {"status", "latency", "last_check", "output"}
        seen.append(event.revision)
    assert seen == sorted(seen)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_ttl_check_passes_through_the_agent_check_endpoint(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    record = {**RECORD, "check": {"kind": "ttl", "interval": 15}}
    await backend.put_instance("pricing", "pricing-1", json.dumps(record).encode())
    (check_id,) = fake.check_ids("pricing-1")
    async with httpx.AsyncClient(base_url=address(fake)) as client:
        resp = await client.put(
            f"/v1/agent/check/pass/{check_id}", headers={"X-Consul-Token": "root-token"}
        )
        assert resp.status_code == 200
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        kv = await backend.get("health/pricing/pricing-1")
        if kv is not None and json.loads(kv.value)["status"] == "healthy":
            break
        assert loop.time() < deadline, "the TTL check's pass never reached the hub"
        await asyncio.sleep(0.05)


async def test_native_service_gets_safe_defaults_and_meta_opt_ins(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    """Services registered with Consul directly, no hub involved, still appear."""
    start = await backend.current_revision() + 1
    stream = backend.watch("catalog/", start_revision=start)
    async with httpx.AsyncClient(base_url=address(fake)) as client:
        for body in [
            {"Name": "redis", "ID": "redis-1", "Port": 6379, "Tags": ["cache"]},
            {
                "Name": "risk",
                "ID": "risk-1",
                "Address": "127.0.0.2",
                "Port": 9000,
                "Meta": {
                    "hub-subscription-requirements": "pro,enterprise",
                    "hub-resource-tier": "enterprise",
                    "hub-tenant-capable": "true",
                    "version": "1.2.3",
                },
                "Weights": {"Passing": 5, "Warning": 1},
            },
        ]:
            resp = await client.put(
                "/v1/agent/service/register", json=body, headers={"X-Consul-Token": "root-token"}
            )
            assert resp.status_code == 200, resp.text
    events = await next_events(stream, 2)
    records = {e.key: json.loads(e.value or b"") for e in events}
    redis = records["catalog/redis/redis-1"]
    assert redis["host"] == "127.0.0.1"  # no service address: the node's
    assert redis["port"] == 6379
    assert redis["subscription_requirements"] is None  # public
    assert redis["resource_tier"] == "basic"
    assert redis["tenant_capable"] is False
    assert redis["weight"] == 1
    assert redis["tags"] == ["cache"]
    risk = records["catalog/risk/risk-1"]
    assert risk["subscription_requirements"] == ["pro", "enterprise"]
    assert risk["resource_tier"] == "enterprise"
    assert risk["tenant_capable"] is True
    assert risk["version"] == "1.2.3"
    assert risk["weight"] == 5
    assert (risk["host"], risk["port"]) == ("127.0.0.2", 9000)
    # Consul's own "consul" service is not hub material.
    snapshot = await backend.range("catalog/")
    assert {kv.key for kv in snapshot.items} == {"catalog/redis/redis-1", "catalog/risk/risk-1"}
    await stream.aclose()  # type: ignore[attr-defined]


async def test_delete_instance_deregisters_and_reports_absence(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    rev = await backend.put_instance("pricing", "pricing-1", json.dumps(RECORD).encode())
    drev = await backend.delete_instance("pricing", "pricing-1")
    assert drev is not None
    assert drev > rev
    assert fake.requests_to("/v1/agent/service/deregister/pricing-1", "PUT")
    assert await backend.get("catalog/pricing/pricing-1") is None
    assert await backend.get("health/pricing/pricing-1") is None
    assert await backend.delete_instance("pricing", "pricing-1") is None


async def test_reserved_meta_keys_are_rejected_before_consul_sees_them(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    record = {**RECORD, "meta": {"hub-managed": "false"}}
    with pytest.raises(InvalidRequest):
        await backend.put_instance("pricing", "pricing-1", json.dumps(record).encode())
    assert fake.requests_to("/v1/agent/service/register") == []


def test_hub_records_round_trip_through_a_registration() -> None:
    registration = registration_for("pricing", "pricing-1", {**RECORD, "load": 0.25, "lease": 7})
    back = record_from_service(registration_as_catalog_entry(registration), node_address="")
    assert back == {**RECORD, "load": 0.25, "lease": 7}


async def test_an_instance_bound_to_a_lease_goes_when_the_lease_ends(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    lease = await backend.grant_lease(30)
    rev = await backend.put_instance(
        "pricing", "pricing-1", json.dumps(RECORD).encode(), lease=lease.id
    )
    kv = await backend.get("catalog/pricing/pricing-1")
    assert kv is not None
    assert kv.lease == lease.id
    (register,) = fake.requests_to("/v1/agent/service/register", "PUT")
    assert register.json()["Meta"]["hub-lease"] == str(lease.id)
    stream = backend.watch("catalog/", start_revision=rev + 1)
    await backend.revoke_lease(lease.id)
    (event,) = await next_events(stream, 1)
    assert (event.type, event.key) == (EventType.DELETE, "catalog/pricing/pricing-1")
    assert fake.requests_to("/v1/agent/service/deregister/pricing-1", "PUT")
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_watch_fails_with_backend_unavailable_when_the_agent_goes(
    backend: ConsulBackend, fake: FakeConsul
) -> None:
    start = await backend.current_revision() + 1
    stream = backend.watch("", start_revision=start)
    fake.stop()
    with pytest.raises(BackendUnavailable):
        await next_events(stream, 1, timeout=30)


# -- configuration ----------------------------------------------------------------------


async def test_settings_select_the_consul_backend_and_the_hub_serves_from_it(
    fake: FakeConsul, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUB_BACKEND", "consul")
    monkeypatch.setenv("HUB_CONSUL_ADDRESS", address(fake))
    monkeypatch.setenv("HUB_CONSUL_TOKEN", "root-token")
    monkeypatch.setenv("HUB_CONSUL_DATACENTER", "dc1")
    monkeypatch.setenv("HUB_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
    settings = load_settings(data_dir=str(tmp_path))
    assert "root-token" not in repr(settings)
    backend = create_backend(settings.backend, **settings.backend_options())
    assert isinstance(backend, ConsulBackend)
    assert backend.describe()["acl_token"] is True
    assert "root-token" not in json.dumps(backend.describe())
    app = create_app(settings)
    hub = app.state.hub
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub.test", headers=ADMIN_HEADERS
        ) as api:
            resp = await api.post(
                "/services/register", json={"name": "quotes", "host": "127.0.0.1", "port": 8300}
            )
            assert resp.status_code == 201, resp.text
            listed = (await api.get("/services/quotes")).json()
            assert len(listed["instances"]) == 1
    finally:
        await hub.stop()
    registered = fake.requests_to("/v1/agent/service/register", "PUT")
    assert registered[0].json()["Name"] == "quotes"
    assert {r.token for r in registered} == {"root-token"}


async def test_a_read_only_token_makes_registration_a_502_not_a_500(
    fake: FakeConsul, tmp_path: Path
) -> None:
    settings = load_settings(data_dir=str(tmp_path), admin_token=TEST_ADMIN_TOKEN)
    backend = ConsulBackend(address(fake), token="reader-token", kv_prefix=PREFIX)
    await backend.open()  # an injected backend is opened (and closed) by its owner
    app = create_app(settings, backend=backend)
    hub = app.state.hub
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub.test", headers=ADMIN_HEADERS
        ) as api:
            resp = await api.post(
                "/services/register", json={"name": "quotes", "host": "127.0.0.1", "port": 8300}
            )
    finally:
        await hub.stop()
        await backend.close()
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"] == "backend_permission_denied"
