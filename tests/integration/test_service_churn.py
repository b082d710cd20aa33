"""A hub forgets departed services: memory and /metrics stay flat under churn (issue 11).

Real parts: the embedded store in a temporary directory, the hub's own domain services
for the churn (what the HTTP routes call, minus HTTP, to keep 20,000 cycles affordable),
and the ASGI app for ``/metrics`` and ``/health``.
"""

from __future__ import annotations

import gc
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.sqlite import SQLiteBackend
from facade import HubSettings, create_app
from facade.circuits.breakers import circuit_key
from facade.models import CircuitReport, ServiceRegistration
from facade.runtime import Hub
from facade.state.catalog import health_key
from shared.tenancy import TenantContext

ADMIN = "churn-admin-token-0123456789abcdef"


SHM = Path("/dev/shm")


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    """On tmpfs when there is one: the same SQLite, without a disk flush per write."""
    with tempfile.TemporaryDirectory(dir=SHM if SHM.is_dir() else tmp_path) as store:
        yield Path(store)


@pytest.fixture
async def hub_client(
    store_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[Hub, httpx.AsyncClient]]:
    backend = SQLiteBackend(store_dir, poll_interval=0.02)
    await backend.open()
    settings = HubSettings(
        data_dir=tmp_path / "unused",
        admin_token=ADMIN,  # type: ignore[arg-type]
        probing=False,
        circuit_minimum_calls=2,
    )
    app = create_app(settings, backend=backend)
    hub: Hub = app.state.hub
    await hub.start()
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub.test", headers=headers
    ) as client:
        yield hub, client
    await hub.stop()
    await backend.close()


async def churn(hub: Hub, start: int, stop: int) -> None:
    """Register, use and deregister one distinct service per cycle."""
    ctx = TenantContext()
    for i in range(start, stop):
        name = f"churn-{i}"
        ports = (1, 2) if i % 10 == 0 else (1,)
        for port in ports:
            await hub.registry.register(ServiceRegistration(name=name, host="127.0.0.1", port=port))
        hub.discovery.discover(name, ctx, "round_robin")
        hub.discovery.endpoint(name, ctx, "round_robin")
        # Every service gets circuits; every 10th trips them (records in the backend).
        failures = 2 if i % 10 == 0 else 1
        for _ in range(failures):
            await hub.circuit_service.report(name, CircuitReport(success=False), ctx)
        for port in ports:
            await hub.registry.deregister(name, f"{name}-127.0.0.1-{port}")


async def measure(hub: Hub, client: httpx.AsyncClient) -> tuple[int, int, int]:
    """(memory blocks the interpreter holds, /metrics bytes, mirrored keys) right now."""
    # Stored circuit records of departed services are deleted in the background.
    await client.get("/health")
    gc.collect()
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    return sys.getallocatedblocks(), len(metrics.content), len(list(hub.view.items("")))


@pytest.mark.slow
async def test_memory_and_metrics_stay_flat_over_20000_departed_services(
    hub_client: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, client = hub_client
    await churn(hub, 0, 2_000)
    early_blocks, early_metrics, early_keys = await measure(hub, client)
    await churn(hub, 2_000, 20_000)
    late_blocks, late_metrics, late_keys = await measure(hub, client)
    print(
        f"after 2,000 / 20,000 cycles: {early_blocks} / {late_blocks} memory blocks, "
        f"/metrics {early_metrics} / {late_metrics} bytes, {early_keys} / {late_keys} keys"
    )
    # Before the fix each departed service kept three circuits (pybreaker breakers,
    # windows, locks: dozens of blocks) and three metric series: 18,000 cycles added
    # hundreds of thousands of blocks. Allow one block per cycle of noise.
    assert late_blocks - early_blocks < 18_000, (early_blocks, late_blocks)
    assert late_metrics - early_metrics < 2_000, (early_metrics, late_metrics)
    assert "churn-" not in (await client.get("/metrics")).text
    assert late_keys <= early_keys + 5, (early_keys, late_keys)
    assert not [kv.key for kv in hub.view.items("circuits/")]
    assert (await client.get("/health")).json()["view"]["services"] == 0


async def test_a_departed_service_leaves_no_circuits_selection_state_or_records(
    hub_client: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, client = hub_client
    await churn(hub, 0, 1)  # two instances, tripped circuits, round-robin state
    assert hub.circuits.states() == []
    assert hub.discovery.selector.round_robin._current == {}
    for tier in ("free", "pro", "enterprise"):
        key = circuit_key("churn-0", tier)
        for _ in range(200):
            if await hub.backend.get(key) is None:
                break
            await hub.view.wait_for(hub.view.revision + 1, 0.05)
        assert await hub.backend.get(key) is None
    assert "churn-0" not in (await client.get("/metrics")).text


async def test_health_counts_only_services_with_instances(
    hub_client: tuple[Hub, httpx.AsyncClient],
) -> None:
    hub, client = hub_client
    await hub.registry.register(ServiceRegistration(name="kept", host="127.0.0.1", port=1))
    await hub.registry.register(ServiceRegistration(name="gone", host="127.0.0.1", port=1))
    # An instance that vanished without a deregistration (a lease expiring): its health
    # record outlives it.
    revision = await hub.backend.put(
        health_key("gone", "gone-127.0.0.1-1"), b'{"status":"healthy"}'
    )
    revision = await hub.backend.delete_instance("gone", "gone-127.0.0.1-1") or revision
    assert await hub.view.wait_for(revision, 10)
    view = (await client.get("/health")).json()["view"]
    assert (view["services"], view["instances"]) == (1, 1)
