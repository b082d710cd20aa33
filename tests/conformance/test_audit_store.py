"""The audit store of every backend: append, query, trim, and never in the keyspace."""

from __future__ import annotations

import asyncio

from adapters import AuditQuery, AuditRecord, Backend, EventType
from facade.access.audit import AuditLog, audit_id
from tests.conformance.conftest import RunningHub

BASE_NS = 1_700_000_000 * 10**9


def records(start: int, count: int, **fields: str) -> list[AuditRecord]:
    """``count`` records one second apart from ``BASE_NS + start`` seconds."""
    return [
        {"id": audit_id(BASE_NS + (start + i) * 10**9), "action": "POST /x", **fields}
        for i in range(count)
    ]


async def test_append_and_query_newest_first_with_filters_and_paging(backend: Backend) -> None:
    tenant_a = records(0, 10, tenant_id="tenant-a", token_id="tok1", action="POST /services")
    tenant_b = records(5, 10, tenant_id="tenant-b", token_id="tok2", action="DELETE /tokens/x")
    # Two "replicas" whose batches overlap in time: the answer is still in id order.
    await backend.append_audit(tenant_a)
    await backend.append_audit(tenant_b)
    everything = sorted(tenant_a + tenant_b, key=lambda r: r["id"], reverse=True)
    assert await backend.query_audit(AuditQuery(limit=100)) == everything
    assert await backend.query_audit(AuditQuery(limit=3)) == everything[:3]
    page = await backend.query_audit(AuditQuery(limit=4, before=everything[5]["id"]))
    assert page == everything[6:10]
    only_a = await backend.query_audit(AuditQuery(tenant_id="tenant-a", limit=100))
    assert only_a == sorted(tenant_a, key=lambda r: r["id"], reverse=True)
    by_token = await backend.query_audit(AuditQuery(token_id="tok2", limit=2))
    assert by_token == sorted(tenant_b, key=lambda r: r["id"], reverse=True)[:2]
    deletes = await backend.query_audit(AuditQuery(action="/tokens", limit=100))
    assert {r["tenant_id"] for r in deletes} == {"tenant-b"}
    assert len(deletes) == 10
    assert await backend.query_audit(AuditQuery(tenant_id="nobody")) == []


async def test_trim_by_age_then_by_count(backend: Backend) -> None:
    for batch in range(6):
        await backend.append_audit(records(batch * 100, 10, tenant_id=f"t{batch}"))
    # Age: batches 0 and 1 (seconds 0-9 and 100-109) are older than second 150.
    deleted = await backend.trim_audit(
        older_than=audit_id(BASE_NS + 150 * 10**9), max_records=10**6
    )
    assert deleted == 20
    left = await backend.query_audit(AuditQuery(limit=1000))
    assert {r["tenant_id"] for r in left} == {"t2", "t3", "t4", "t5"}
    # Count: at most 25 of the 40 left stay, and the newest are the ones kept.
    deleted = await backend.trim_audit(older_than=audit_id(0), max_records=25)
    left = await backend.query_audit(AuditQuery(limit=1000))
    assert deleted == 40 - len(left)
    assert 15 <= len(left) <= 25
    assert {r["tenant_id"] for r in left[:15]} == {"t4", "t5"}
    assert "t2" not in {r["tenant_id"] for r in left}
    assert await backend.trim_audit(older_than=audit_id(0), max_records=25) == 0


async def test_audit_records_are_outside_the_keyspace_and_its_watch(backend: Backend) -> None:
    await backend.put("t/before", b"1")
    start = await backend.current_revision()
    events: list[str] = []

    async def follow() -> None:
        async for event in backend.watch("", start_revision=start + 1):
            if event.type is not EventType.PROGRESS:
                events.append(event.key)
                if event.key == "t/after":
                    return

    watcher = asyncio.create_task(follow())
    await backend.append_audit(records(0, 50, tenant_id="t"))
    await backend.put("t/after", b"2")
    await asyncio.wait_for(watcher, 15)
    assert events == ["t/after"]
    keys = [kv.key for kv in (await backend.range("")).items]
    assert keys == ["t/after", "t/before"]
    assert len(await backend.query_audit(AuditQuery(limit=100))) == 50


async def test_api_writes_are_audited_but_never_reach_the_view(running_hub: RunningHub) -> None:
    hub = running_hub.hub
    for port in range(9100, 9105):
        resp = await running_hub.client.post(
            "/services/register", json={"name": "svc", "host": "127.0.0.1", "port": port}
        )
        assert resp.status_code == 201
    refused = await running_hub.client.post("/services/register", json={"name": "x"})
    assert refused.status_code == 422
    async with running_hub.client_with("chub_0123.wrong") as stranger:
        assert (await stranger.post("/tenants", json={})).status_code == 401
    reader = await running_hub.issue("read-only")
    async with running_hub.client_with(reader) as client:
        assert (await client.post("/tenants", json={})).status_code == 403
    page = (await running_hub.client.get("/audit", params={"limit": 100})).json()
    assert [e["status"] for e in page["entries"][:9]] == [403, 201, 401, 422] + [201] * 5
    assert not [kv.key for kv in (await hub.backend.range("")).items if "audit" in kv.key]
    assert not [kv.key for kv in hub.view.items("") if "audit" in kv.key]
    # One batch per flush, not one write per request (the first batch holds the token).
    assert hub.audit.batches < hub.audit.stored


async def test_queued_records_go_in_one_write_and_are_flushed_on_stop(backend: Backend) -> None:
    audit = AuditLog(backend, trim_interval=3600)
    audit.start()
    for i in range(300):  # queued while the writer waits: one batch
        audit.record({"action": "POST /x", "tenant_id": "t", "n": i})
    await audit.flush()
    assert (audit.stored, audit.batches) == (300, 1)
    for i in range(7):
        audit.record({"action": "DELETE /y", "tenant_id": "t", "n": i})
    await audit.stop()  # no flush() first: stop stores what is queued
    stored = await backend.query_audit(AuditQuery(limit=1000))
    assert len(stored) == 307
    assert [r["n"] for r in stored[:7]] == [6, 5, 4, 3, 2, 1, 0]
    assert audit.describe()["lost"] == 0
