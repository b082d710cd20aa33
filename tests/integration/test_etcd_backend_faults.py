"""The etcd backend against a real 3-member cluster while members crash and return."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters import EventType, WatchEvent
from adapters.etcd import EtcdBackend
from shared.errors import BackendUnavailable, NoQuorum
from tests.etcd_cluster import EtcdCluster, eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 3-member cluster per test: the tests crash members."""
    started = EtcdCluster(tmp_path / "etcd", size=3).start()
    yield started
    started.stop()


@pytest.fixture
async def backend(cluster: EtcdCluster) -> AsyncIterator[EtcdBackend]:
    opened = EtcdBackend(cluster.endpoints, namespace="faults")
    await opened.open()
    yield opened
    await opened.close()


async def next_key_event(watch: AsyncIterator[WatchEvent]) -> WatchEvent:
    async for event in watch:
        if event.type is not EventType.PROGRESS:
            return event
    raise AssertionError("the watch ended without an event")


async def test_reads_and_writes_fail_over_when_the_preferred_member_dies(
    cluster: EtcdCluster, backend: EtcdBackend
) -> None:
    before = await backend.put("svc/a", b"1")
    preferred = cluster.members[0]  # the backend starts with the first endpoint
    assert backend.describe()["preferred_endpoint"] == preferred.client_url
    cluster.kill(preferred)
    kv = await eventually(lambda: backend.get("svc/a"))
    assert kv is not None
    assert kv.mod_revision == before
    after = await eventually(lambda: backend.put("svc/b", b"2"))
    assert after > before
    assert backend.describe()["preferred_endpoint"] != preferred.client_url
    assert [kv.key for kv in (await backend.range("svc/")).items] == ["svc/a", "svc/b"]


async def test_a_watch_on_a_crashed_member_ends_instead_of_hanging(
    cluster: EtcdCluster, backend: EtcdBackend
) -> None:
    start = await backend.current_revision() + 1
    watch = backend.watch("w/", start_revision=start)
    first = asyncio.ensure_future(next_key_event(watch))
    await asyncio.sleep(0.3)
    written = await backend.put("w/1", b"x")
    assert (await asyncio.wait_for(first, 10)).revision == written
    cluster.kill(cluster.members[0])  # the member the watch streams from
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(next_key_event(watch), 30)
    await watch.aclose()  # type: ignore[attr-defined]
    # The caller resumes from its last revision + 1 on another member and misses nothing.
    missed = await eventually(lambda: backend.put("w/2", b"y"))
    resumed = backend.watch("w/", start_revision=written + 1)
    event = await asyncio.wait_for(next_key_event(resumed), 10)
    await resumed.aclose()  # type: ignore[attr-defined]
    assert (event.key, event.revision) == ("w/2", missed)


async def test_a_hung_member_is_skipped_and_its_watch_ends(
    cluster: EtcdCluster, backend: EtcdBackend
) -> None:
    start = await backend.current_revision() + 1
    before = await backend.put("h/1", b"x")
    hung = cluster.members[0]  # preferred by the backend, and where the watch streams from
    watch = backend.watch("h/", start_revision=start)
    assert (await asyncio.wait_for(next_key_event(watch), 10)).revision == before
    hung.pause()  # its sockets stay open: only a liveness check can tell
    try:
        with pytest.raises(BackendUnavailable):
            await asyncio.wait_for(next_key_event(watch), 30)
        await watch.aclose()  # type: ignore[attr-defined]
        after = await eventually(lambda: backend.put("h/2", b"y"))
        assert backend.describe()["preferred_endpoint"] != hung.client_url
        snapshot = await backend.range("h/")
        assert [(kv.key, kv.mod_revision) for kv in snapshot.items] == [
            ("h/1", before),
            ("h/2", after),
        ]
    finally:
        hung.resume()


async def test_quorum_loss_fails_writes_serves_reads_and_recovers(
    cluster: EtcdCluster, backend: EtcdBackend
) -> None:
    for i in range(3):
        await backend.put(f"q/{i}", str(i).encode())
    survivor, *lost = cluster.members
    for member in lost:
        cluster.kill(member)
    # Right after the loss the survivor still believes in a leader: the write is proposed
    # and cannot commit; it fails after write_timeout (figure printed, not asserted).
    started = time.monotonic()
    with pytest.raises(NoQuorum):
        await backend.put("q/racing", b"maybe applied later")
    print(f"write refused {time.monotonic() - started:.3f}s after it was sent (proposed)")
    # Until the survivor notices (an election timeout), a write may still be proposed and
    # applied later; once it knows it has no leader, nothing is proposed at all.
    survivor.wait_leaderless()
    started = time.monotonic()
    with pytest.raises(NoQuorum) as raised:
        await backend.put("q/new", b"never")
    print(f"write refused {time.monotonic() - started:.3f}s after it was sent (not proposed)")
    assert "no quorum" in str(raised.value)
    with pytest.raises(NoQuorum):
        await backend.grant_lease(10)
    # Reads fall back to the survivor's local copy.
    snapshot = await backend.range("q/")
    assert [kv.value for kv in snapshot.items] == [b"0", b"1", b"2"]
    with pytest.raises(BackendUnavailable):
        await backend.current_revision()
    with pytest.raises(NoQuorum):
        async for _ in backend.watch("q/", start_revision=1):
            pass
    for member in lost:
        cluster.restart(member, wait=False)
    cluster.wait_healthy()
    revision = await eventually(lambda: backend.put("q/new", b"after"))
    assert revision > snapshot.revision
    # Nothing was half-written: the failed write never appeared.
    history = backend.watch("q/new", start_revision=snapshot.revision + 1)
    event = await asyncio.wait_for(next_key_event(history), 10)
    await history.aclose()  # type: ignore[attr-defined]
    assert (event.value, event.revision) == (b"after", revision)


async def test_open_fails_while_etcd_is_down_and_succeeds_once_it_is_up(
    cluster: EtcdCluster,
) -> None:
    for member in cluster.members:
        cluster.kill(member)
    backend = EtcdBackend(cluster.endpoints, namespace="late")
    try:
        with pytest.raises(BackendUnavailable):
            await backend.open()
        for member in cluster.members:
            cluster.restart(member, wait=False)
        cluster.wait_healthy()
        await eventually(backend.open)
        assert await backend.put("k", b"v") > 0
    finally:
        await backend.close()
