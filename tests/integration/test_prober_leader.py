"""Only one replica probes; another takes over when it stops or is killed (real process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import FAST_CHECK, ServiceFactory, eventually, running_hub
from tests.processes import ADMIN_HEADERS, HubProcess


async def test_one_replica_probes_and_another_takes_over_on_stop(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    service = await loopback_services()
    async with running_hub(tmp_path, leader_ttl=2) as first:
        await first.register("audit", service, check=FAST_CHECK)

        async def first_probes() -> None:
            assert first.hub.prober is not None
            assert first.hub.prober.running

        await eventually(first_probes)
        async with running_hub(tmp_path, leader_ttl=2) as second:
            await asyncio.sleep(1.0)  # several follower look-ups: it must not start probing
            assert second.hub.prober is not None
            assert not second.hub.prober.running
            health = (await second.client.get("/health")).json()
            assert health["prober"]["leader"] is False
            await first.hub.stop()  # releases the lease: immediate vacancy

            async def second_probes() -> None:
                assert second.hub.prober is not None
                assert second.hub.prober.running
                assert second.hub.prober.stats.probes > 0

            await eventually(second_probes)
            service.mode = "fail"

            async def critical_via_second() -> None:
                summary = (await second.client.get("/health/services")).json()
                assert summary["audit"]["status"] == "critical"

            await eventually(critical_via_second)


@pytest.mark.slow
async def test_takeover_within_the_lease_ttl_after_the_leader_is_killed(
    tmp_path: Path,
    loopback_services: ServiceFactory,
    hub_processes: Callable[..., HubProcess],
) -> None:
    data_dir = tmp_path / "data"
    leader = hub_processes(
        args=["--data-dir", str(data_dir)],
        env={"HUB_PROBING": "true", "HUB_LEADER_TTL": "2"},
    ).start()
    service = await loopback_services()
    async with httpx.AsyncClient(base_url=leader.url, timeout=5, headers=ADMIN_HEADERS) as remote:

        async def remote_leads() -> None:
            health = (await remote.get("/health")).json()
            assert health["prober"]["leader"] is True

        await eventually(remote_leads)
        registered = await remote.post(
            "/services/register",
            json={"name": "margin", "host": service.host, "port": service.port}
            | {"check": FAST_CHECK},
        )
        assert registered.status_code == 201, registered.text

    async with running_hub(data_dir, leader_ttl=2) as survivor:
        assert survivor.hub.prober is not None
        assert not survivor.hub.prober.running
        leader.kill()  # SIGKILL: no release, the lease has to expire

        async def survivor_probes() -> None:
            assert survivor.hub.prober is not None
            assert survivor.hub.prober.running
            assert survivor.hub.prober.stats.probes > 0

        await eventually(survivor_probes)
        service.mode = "fail"

        async def critical() -> None:
            summary = (await survivor.client.get("/health/services")).json()
            assert summary["margin"]["status"] == "critical"

        await eventually(critical)
