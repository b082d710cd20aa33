"""The backend contract: every backend kind must pass every test here unchanged."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from adapters import Backend, EventType, Put, WatchEvent
from shared.errors import InvalidRequest, LeaseNotFound, RevisionCompacted, RevisionConflict
from tests.conftest import BackendFactory


async def collect(
    backend: Backend, prefix: str, start: int, count: int, timeout: float = 10.0
) -> list[WatchEvent]:
    """The first ``count`` key events (progress events skipped) of a watch."""
    events: list[WatchEvent] = []

    async def run() -> None:
        async for event in backend.watch(prefix, start_revision=start):
            if event.type is not EventType.PROGRESS:
                events.append(event)
                if len(events) == count:
                    return

    await asyncio.wait_for(run(), timeout)
    return events


async def wait_until_absent(backend: Backend, key: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await backend.get(key) is not None:
        assert loop.time() < deadline, f"{key} still present after {timeout}s"
        await asyncio.sleep(0.1)


async def test_put_get_roundtrip_with_revisions(backend: Backend) -> None:
    assert await backend.get("t/a") is None
    rev1 = await backend.put("t/a", b"one")
    kv = await backend.get("t/a")
    assert kv is not None
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision) == ("t/a", b"one", rev1, rev1)
    rev2 = await backend.put("t/a", b"two")
    assert rev2 > rev1
    kv = await backend.get("t/a")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision) == (b"two", rev1, rev2)
    assert kv.version == 2
    assert await backend.current_revision() >= rev2


async def test_binary_and_unicode_values_are_preserved(backend: Backend) -> None:
    payload = bytes(range(256)) + "ünïcødé ✓".encode()
    await backend.put("t/bin", payload)
    kv = await backend.get("t/bin")
    assert kv is not None
    assert kv.value == payload


async def test_range_by_prefix_is_ordered_and_exclusive(backend: Backend) -> None:
    for key in ["svc/b", "svc/a", "svc/c/x", "svd/z", "sv"]:
        await backend.put(key, key.encode())
    snap = await backend.range("svc/")
    assert [kv.key for kv in snap.items] == ["svc/a", "svc/b", "svc/c/x"]
    assert snap.revision == await backend.current_revision()
    everything = await backend.range("")
    assert {kv.key for kv in everything.items} >= {"svc/a", "svd/z", "sv"}


async def test_delete(backend: Backend) -> None:
    rev = await backend.put("t/d", b"x")
    drev = await backend.delete("t/d")
    assert drev is not None
    assert drev > rev
    assert await backend.get("t/d") is None
    assert await backend.delete("t/d") is None


async def test_compare_and_set(backend: Backend) -> None:
    rev = await backend.put("t/cas", b"v1", if_revision=0)
    with pytest.raises(RevisionConflict):
        await backend.put("t/cas", b"again", if_revision=0)
    with pytest.raises(RevisionConflict):
        await backend.put("t/cas", b"stale", if_revision=rev + 1000)
    kv = await backend.get("t/cas")
    assert kv is not None
    assert kv.value == b"v1"
    rev2 = await backend.put("t/cas", b"v2", if_revision=rev)
    with pytest.raises(RevisionConflict):
        await backend.delete("t/cas", if_revision=rev)
    assert await backend.delete("t/cas", if_revision=rev2) is not None
    with pytest.raises(InvalidRequest):
        await backend.delete("t/cas", if_revision=0)


async def test_put_all_writes_every_key_or_none(backend: Backend) -> None:
    existing = await backend.put("t/txn/b", b"old")
    rev = await backend.put_all(
        [Put("t/txn/a", b"a1", if_revision=0), Put("t/txn/b", b"b1", if_revision=existing)]
    )
    a, b = await backend.get("t/txn/a"), await backend.get("t/txn/b")
    assert a is not None
    assert b is not None
    assert (a.value, b.value) == (b"a1", b"b1")
    assert rev == max(a.mod_revision, b.mod_revision)
    assert b.version == 2
    # One failed condition (b is no longer at `existing`): nothing is written, not even c.
    with pytest.raises(RevisionConflict):
        await backend.put_all(
            [Put("t/txn/c", b"c1", if_revision=0), Put("t/txn/b", b"b2", if_revision=existing)]
        )
    assert await backend.get("t/txn/c") is None
    b_after = await backend.get("t/txn/b")
    assert b_after is not None
    assert b_after.value == b"b1"
    # Unconditional writes go through whatever the keys hold.
    await backend.put_all([Put("t/txn/a", b"a2"), Put("t/txn/c", b"c2")])
    snapshot = await backend.range("t/txn/")
    assert [(kv.key, kv.value) for kv in snapshot.items] == [
        ("t/txn/a", b"a2"),
        ("t/txn/b", b"b1"),
        ("t/txn/c", b"c2"),
    ]
    with pytest.raises(InvalidRequest):
        await backend.put_all([Put("t/txn/d", b"1"), Put("t/txn/d", b"2")])
    with pytest.raises(InvalidRequest):
        await backend.put_all([])


async def test_concurrent_put_all_lets_exactly_one_win(backend: Backend) -> None:
    async def attempt(i: int) -> bool:
        try:
            await backend.put_all(
                [Put("t/race/marker", b"%d" % i, if_revision=0), Put(f"t/race/{i}", b"x")]
            )
        except RevisionConflict:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(10)))
    assert results.count(True) == 1
    winner = results.index(True)
    keys = [kv.key for kv in (await backend.range("t/race/")).items]
    assert keys == sorted([f"t/race/{winner}", "t/race/marker"])


async def test_concurrent_compare_and_set_lets_exactly_one_win(backend: Backend) -> None:
    base = await backend.put("t/counter", b"0")

    async def attempt(i: int) -> bool:
        try:
            await backend.put("t/counter", str(i).encode(), if_revision=base)
        except RevisionConflict:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert results.count(True) == 1


async def test_lease_binds_keys_and_revoke_deletes_them(backend: Backend) -> None:
    lease = await backend.grant_lease(30)
    assert lease.ttl == 30
    await backend.put("t/leased/1", b"a", lease=lease.id)
    await backend.put("t/leased/2", b"b", lease=lease.id)
    await backend.put("t/plain", b"c")
    kv = await backend.get("t/leased/1")
    assert kv is not None
    assert kv.lease == lease.id
    assert await backend.keep_alive(lease.id) == 30
    await backend.revoke_lease(lease.id)
    assert await backend.get("t/leased/1") is None
    assert await backend.get("t/leased/2") is None
    assert await backend.get("t/plain") is not None
    with pytest.raises(LeaseNotFound):
        await backend.keep_alive(lease.id)
    with pytest.raises(LeaseNotFound):
        await backend.put("t/leased/3", b"x", lease=lease.id)


async def test_lease_expiry_deletes_keys_and_keep_alive_extends(backend: Backend) -> None:
    short = await backend.grant_lease(1)
    kept = await backend.grant_lease(2)
    await backend.put("t/exp/short", b"x", lease=short.id)
    await backend.put("t/exp/kept", b"y", lease=kept.id)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < 3.5:
        await backend.keep_alive(kept.id)
        await asyncio.sleep(0.4)
    await wait_until_absent(backend, "t/exp/short")
    assert await backend.get("t/exp/kept") is not None
    with pytest.raises(LeaseNotFound):
        await backend.keep_alive(short.id)


async def test_rebinding_a_key_to_a_new_lease_survives_revoking_the_old(backend: Backend) -> None:
    old = await backend.grant_lease(30)
    new = await backend.grant_lease(30)
    await backend.put("t/rebind", b"1", lease=old.id)
    await backend.put("t/rebind", b"2", lease=new.id)
    await backend.revoke_lease(old.id)
    kv = await backend.get("t/rebind")
    assert kv is not None
    assert kv.value == b"2"


async def test_watch_delivers_ordered_events_from_a_revision(backend: Backend) -> None:
    start = await backend.current_revision() + 1
    r1 = await backend.put("w/a", b"1")
    r2 = await backend.put("w/b", b"2")
    await backend.put("other/x", b"ignored")
    r3 = await backend.delete("w/a")
    events = await collect(backend, "w/", start, 3)
    assert [(e.type, e.key, e.revision) for e in events] == [
        (EventType.PUT, "w/a", r1),
        (EventType.PUT, "w/b", r2),
        (EventType.DELETE, "w/a", r3),
    ]
    assert events[0].value == b"1"


async def test_watch_sees_live_writes_and_resumes(backend: Backend) -> None:
    start = await backend.current_revision() + 1
    task = asyncio.create_task(collect(backend, "live/", start, 2))
    await asyncio.sleep(0.2)
    r1 = await backend.put("live/1", b"a")
    r2 = await backend.put("live/2", b"b")
    events = await task
    assert [e.revision for e in events] == [r1, r2]
    # Resuming after the first event replays exactly the rest.
    resumed = await collect(backend, "live/", r1 + 1, 1)
    assert [(e.key, e.revision) for e in resumed] == [("live/2", r2)]


async def test_watch_reports_lease_expiry_as_delete(backend: Backend) -> None:
    lease = await backend.grant_lease(1)
    start = await backend.current_revision() + 1
    await backend.put("exp/k", b"v", lease=lease.id)
    events = await collect(backend, "exp/", start, 2, timeout=20)
    assert [(e.type, e.key) for e in events] == [
        (EventType.PUT, "exp/k"),
        (EventType.DELETE, "exp/k"),
    ]


async def test_many_concurrent_watchers_each_see_every_event(backend: Backend) -> None:
    start = await backend.current_revision() + 1
    watchers = [asyncio.create_task(collect(backend, "fan/", start, 5)) for _ in range(10)]
    for i in range(5):
        await backend.put(f"fan/{i}", b"x")
    results = await asyncio.gather(*watchers)
    assert all([e.key for e in r] == [f"fan/{i}" for i in range(5)] for r in results)


async def test_watch_from_compacted_revision_raises(backend: Backend) -> None:
    compact = getattr(backend, "compact", None)
    if compact is None:
        pytest.skip(f"the {backend.name} backend cannot be compacted on demand")
    first = await backend.put("c/k", b"0")
    for i in range(5):
        await backend.put("c/k", str(i).encode())
    await compact(await backend.current_revision())
    with pytest.raises(RevisionCompacted):
        async for _ in backend.watch("c/", start_revision=first):
            pass


async def test_catalog_instances_are_watchable_keys(backend: Backend) -> None:
    start = await backend.current_revision() + 1
    rev = await backend.put_instance("pricing", "pricing-1", b'{"host": "127.0.0.1"}')
    drev = await backend.delete_instance("pricing", "pricing-1")
    assert drev is not None
    events = await collect(backend, "catalog/", start, 2)
    assert [(e.type, e.key, e.revision) for e in events] == [
        (EventType.PUT, "catalog/pricing/pricing-1", rev),
        (EventType.DELETE, "catalog/pricing/pricing-1", drev),
    ]
    assert await backend.delete_instance("pricing", "pricing-1") is None


async def test_close_is_idempotent(backend_factory: BackendFactory) -> None:
    backend = await backend_factory()
    await backend.close()
    with contextlib.suppress(Exception):
        await backend.close()
