"""Backup contract of every backend: Backend.snapshot at one revision, Backend.load."""

from __future__ import annotations

import asyncio

import pytest

from adapters import Backend, KeyValue
from shared.errors import Conflict, InvalidRequest
from tests.conftest import BackendFactory

WRITERS = 4
WRITES_EACH = 25


async def test_snapshot_holds_exactly_the_writes_up_to_its_revision(backend: Backend) -> None:
    """Writes keep landing while the snapshot is read: every write acknowledged at or
    before the snapshot's revision is in it, none after it is."""
    acknowledged: dict[str, int] = {}
    started = asyncio.Event()

    async def writer(n: int) -> None:
        for i in range(WRITES_EACH):
            key = f"b/w{n}/{i:03d}"
            acknowledged[key] = await backend.put(key, f"{n}-{i}".encode())
            if i == 3:
                started.set()

    tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    await started.wait()
    done_before = dict(acknowledged)
    snapshot = await backend.snapshot()
    await asyncio.gather(*tasks)

    held = {kv.key: kv for kv in snapshot.items if kv.key.startswith("b/")}
    assert done_before, "some writes must have been acknowledged before the snapshot"
    for key in done_before:
        assert key in held, f"{key} was acknowledged before the snapshot but is missing"
    for key, revision in acknowledged.items():
        if revision <= snapshot.revision:
            assert key in held, f"{key} (revision {revision}) <= {snapshot.revision} missing"
            assert held[key].value == f"{key.split('/')[1][1:]}-{int(key[-3:])}".encode()
        else:
            assert key not in held, f"{key} (revision {revision}) is after the snapshot"
    assert len(held) < WRITERS * WRITES_EACH or snapshot.revision >= max(acknowledged.values())


async def _fill(backend: Backend) -> list[KeyValue]:
    await backend.put("tenants/a", b'{"tier": "free"}')
    await backend.put("tenants/b", b'{"tier": "pro"}')
    await backend.put("tenants/a", b'{"tier": "enterprise"}')
    await backend.put("config/global/history/000000000001", b'{"config": {}}')
    await backend.put("gone/x", b"1")
    await backend.delete("gone/x")
    await backend.put("bin/all", bytes(range(256)))
    return [kv for kv in (await backend.snapshot()).items if not kv.key.startswith("catalog/")]


async def test_load_into_an_empty_keyspace_restores_every_key(
    backend_factory: BackendFactory,
) -> None:
    source = await backend_factory()
    items = await _fill(source)
    target = await backend_factory()
    report = await target.load(items)
    assert report.keys == len(items)
    restored = {
        kv.key: kv
        for kv in (await target.range("")).items
        if not kv.key.startswith(("catalog/", "health/"))
    }
    assert {k: kv.value for k, kv in restored.items()} == {kv.key: kv.value for kv in items}
    if report.revisions_kept:
        for kv in items:
            assert restored[kv.key].mod_revision == kv.mod_revision, kv.key
    # The revision keeps growing from there: a write after the restore is newer.
    assert await target.put("after/restore", b"1") > max(
        kv.mod_revision for kv in restored.values()
    )
    assert await target.get("restore/scratch") is None


async def test_load_refuses_a_non_empty_keyspace_and_writes_nothing(
    backend_factory: BackendFactory,
) -> None:
    source = await backend_factory()
    items = await _fill(source)
    target = await backend_factory()
    await target.put("already/here", b"1")
    with pytest.raises(Conflict):
        await target.load(items)
    left = [
        kv.key
        for kv in (await target.range("")).items
        if not kv.key.startswith(("catalog/", "health/"))
    ]
    assert left == ["already/here"]


async def test_load_with_replace_leaves_exactly_the_backup(
    backend_factory: BackendFactory,
) -> None:
    source = await backend_factory()
    items = await _fill(source)
    target = await backend_factory()
    await target.put("already/here", b"1")
    await target.put("tenants/a", b"stale")
    await target.load(items, replace=True)
    restored = {
        kv.key: kv.value
        for kv in (await target.range("")).items
        if not kv.key.startswith(("catalog/", "health/"))
    }
    assert restored == {kv.key: kv.value for kv in items}


async def test_load_refuses_lease_bound_keys(backend: Backend) -> None:
    leased = KeyValue("x/leased", b"1", 5, 5, 1, lease=42)
    with pytest.raises(InvalidRequest):
        await backend.load([leased])
    assert await backend.get("x/leased") is None
