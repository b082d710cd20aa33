"""What the etcd backend adds beyond the shared contract, on the session's real etcd."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from adapters import EventType, create_backend
from adapters.etcd import EtcdBackend
from shared.errors import InvalidRequest
from tests.etcd_cluster import EtcdCluster


@pytest.fixture
async def namespace(etcd_server: EtcdCluster) -> AsyncIterator[str]:
    name = f"extra-{uuid.uuid4().hex}"
    yield name
    etcd_server.delete_prefix(f"/{name}/")


async def test_a_prefix_larger_than_a_page_is_one_consistent_snapshot(
    etcd_server: EtcdCluster, namespace: str
) -> None:
    backend = EtcdBackend(etcd_server.endpoints, namespace=namespace, range_page_size=3)
    await backend.open()
    try:
        written = [await backend.put(f"big/{i:02d}", str(i).encode()) for i in range(10)]
        await backend.put("bigger", b"outside the prefix")
        snapshot = await backend.range("big/")
        assert [kv.key for kv in snapshot.items] == [f"big/{i:02d}" for i in range(10)]
        assert [kv.mod_revision for kv in snapshot.items] == written
        assert snapshot.revision == await backend.current_revision()
    finally:
        await backend.close()


async def test_namespaces_do_not_see_each_other(etcd_server: EtcdCluster, namespace: str) -> None:
    first = EtcdBackend(etcd_server.endpoints, namespace=f"{namespace}/one")
    second = EtcdBackend(etcd_server.endpoints, namespace=f"{namespace}/two")
    await first.open()
    await second.open()
    try:
        await first.put("catalog/svc/1", b"a")
        await second.put("catalog/svc/2", b"b")
        assert [kv.key for kv in (await first.range("")).items] == ["catalog/svc/1"]
        assert [kv.key for kv in (await second.range("catalog/")).items] == ["catalog/svc/2"]
        assert await first.get("catalog/svc/2") is None
    finally:
        await first.close()
        await second.close()


async def test_registry_builds_it_and_describe_hides_credentials(etcd_server: EtcdCluster) -> None:
    port = etcd_server.members[0].client_port
    backend = create_backend(
        "etcd", endpoints=f"http://hub:secret@127.0.0.1:{port}, http://127.0.0.1:1"
    )
    assert isinstance(backend, EtcdBackend)
    facts = backend.describe()
    assert facts["endpoints"] == [f"http://127.0.0.1:{port}", "http://127.0.0.1:1"]
    assert "secret" not in repr(facts)
    assert facts["namespace"] == "hub"


@pytest.mark.parametrize(
    ("endpoints", "namespace"),
    [("", "hub"), ("127.0.0.1:2379", "hub"), ("http://127.0.0.1:2379", "/")],
)
def test_bad_configuration_is_rejected(endpoints: str, namespace: str) -> None:
    with pytest.raises(InvalidRequest):
        EtcdBackend(endpoints, namespace=namespace)


async def test_an_idle_watch_is_reopened_quietly_without_losing_events(
    etcd_server: EtcdCluster, namespace: str
) -> None:
    # Shorter than the test etcd's 1 s progress interval: the stream times out while idle.
    backend = EtcdBackend(etcd_server.endpoints, namespace=namespace, watch_idle_timeout=0.3)
    await backend.open()
    try:
        start = await backend.current_revision() + 1
        first = await backend.put("idle/1", b"a")
        seen: list[tuple[str, int]] = []

        async def follow() -> None:
            async for event in backend.watch("idle/", start_revision=start):
                if event.type is EventType.PROGRESS:
                    continue
                seen.append((event.key, event.revision))
                if len(seen) == 2:
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(1.5)  # several idle timeouts and reopenings
        assert not task.done()
        second = await backend.put("idle/2", b"b")
        await asyncio.wait_for(task, 10)
        assert seen == [("idle/1", first), ("idle/2", second)]
    finally:
        await backend.close()
