"""The tenancy services without HTTP: two hubs in one process over one SQLite store file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.sqlite import SQLiteBackend
from facade import HubSettings
from facade.runtime import Hub
from shared.errors import PreconditionFailed, QuotaExceeded


@pytest.fixture
async def two_hubs(tmp_path: Path) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two hubs, each with its own connection to the same store (like two replicas)."""
    backends = [SQLiteBackend(tmp_path / "store", poll_interval=0.02) for _ in range(2)]
    hubs = []
    for backend in backends:
        await backend.open()
        hub = Hub(HubSettings(data_dir=tmp_path / "unused"), backend)
        await hub.start()
        hubs.append(hub)
    yield hubs[0], hubs[1]
    for hub in hubs:
        await hub.stop()
    for backend in backends:
        await backend.close()


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_quota_allocations_from_two_hubs_never_exceed_the_limit(
    two_hubs: tuple[Hub, Hub],
) -> None:
    a, b = two_hubs
    await a.tenants.create("t1", "free", None)  # 10 concurrent requests
    await wait_until(lambda: b.tenant_directory.get("t1") is not None)

    async def attempt(hub: Hub) -> int | None:
        """None when allocated, else the limit the refusal named."""
        try:
            await hub.quotas.allocate("t1", "concurrent_requests", 1)
        except QuotaExceeded as exc:
            limit: int = exc.details["limit"]
            return limit
        return None

    results = await asyncio.gather(*(attempt(a if n % 2 else b) for n in range(60)))
    assert results.count(None) == 10
    assert results.count(10) == 50
    await wait_until(
        lambda: (
            a.quotas.usage("t1")["resources"]["concurrent_requests"]["used"] == 10
            and b.quotas.usage("t1")["resources"]["concurrent_requests"]["used"] == 10
        )
    )


async def test_config_written_on_one_hub_wakes_a_waiter_on_the_other(
    two_hubs: tuple[Hub, Hub],
) -> None:
    a, b = two_hubs
    await a.tenants.create("t2", "pro", None)
    await wait_until(lambda: b.tenant_directory.get("t2") is not None)
    index = b.config.effective_version("t2")
    waiter = asyncio.create_task(b.config.wait_past("t2", index, 30))
    written = await a.config.write("t2", "patch", body={"features": {"x": True}}, author="test")
    assert await waiter is True
    assert b.config.effective("t2")["version"] == written["version"]
    assert b.config.effective("t2")["config"]["features"]["x"] is True
    # If-Match with the version read before that write is refused on the other hub.
    with pytest.raises(PreconditionFailed):
        await b.config.write("t2", "put", body={}, if_match={index}, author="test")


async def test_a_fresh_etag_is_accepted_by_a_replica_whose_view_lags(
    two_hubs: tuple[Hub, Hub],
) -> None:
    a, b = two_hubs
    await a.tenants.create("t3", "pro", None)
    for n in range(5):
        # Written on A, then at once on B with the ETag A answered: B's view may not have
        # A's write yet; B must check the backend instead of refusing (or losing it).
        written = await a.config.write(
            "t3", "patch", body={"features": {f"a{n}": True}}, author="a"
        )
        await b.config.write(
            "t3",
            "patch",
            body={"features": {f"b{n}": True}},
            if_match={written["effective_version"]},
            author="b",
        )
    await wait_until(lambda: len(a.config.index.history("t3")) == 10)
    features = a.config.effective("t3")["config"]["features"]
    assert all(features[f"{side}{n}"] for side in "ab" for n in range(5))


async def test_concurrent_patches_on_two_hubs_lose_nothing(two_hubs: tuple[Hub, Hub]) -> None:
    a, b = two_hubs
    await a.tenants.create("t4", "pro", None)
    await wait_until(lambda: b.tenant_directory.get("t4") is not None)
    await asyncio.gather(
        *(
            (a if n % 2 else b).config.write(
                "t4", "patch", body={"features": {f"f{n}": True}}, author="x"
            )
            for n in range(20)
        )
    )
    await wait_until(lambda: len(b.config.index.history("t4")) == 20)
    assert b.config.effective("t4")["config"]["features"] == {
        **b.config.tier_defaults["pro"]["features"],
        **{f"f{n}": True for n in range(20)},
    }
