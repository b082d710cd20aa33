"""Active health checks against real loopback HTTP services, end to end through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import orjson

from adapters import Capabilities
from adapters.sqlite import SQLiteBackend
from facade.state.catalog import health_key
from tests.integration.conftest import (
    FAST_CHECK,
    RunningHub,
    ServiceFactory,
    eventually,
    running_hub,
)


async def instance_health(hub: RunningHub, name: str) -> dict[str, dict[str, Any]]:
    response = await hub.client.get(f"/health/services/{name}")
    assert response.status_code == 200, response.text
    return {i["instance_id"]: i for i in response.json()["instances"]}


async def test_failing_instance_leaves_discovery_and_returns(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    good, flaky = await loopback_services(), await loopback_services()
    async with running_hub(tmp_path) as hub:
        good_id = await hub.register("pricing", good, check=FAST_CHECK)
        flaky_id = await hub.register("pricing", flaky, check=FAST_CHECK)

        async def both_checked() -> None:
            detail = await instance_health(hub, "pricing")
            assert all(i["last_check"] for i in detail.values())
            assert {i["status"] for i in detail.values()} == {"healthy"}

        await eventually(both_checked)
        assert good.requests > 0
        assert flaky.requests > 0

        flaky.mode = "fail"

        async def flaky_critical() -> None:
            detail = await instance_health(hub, "pricing")
            assert detail[flaky_id]["status"] == "critical"
            assert detail[flaky_id]["output"] == "HTTP 503"
            assert detail[good_id]["status"] == "healthy"

        await eventually(flaky_critical)
        good_url = f"http://127.0.0.1:{good.port}"
        for _ in range(20):
            answer = (await hub.client.get("/services/discover/pricing")).json()
            assert answer["all_healthy_endpoints"] == [good_url]
            assert answer["recommended_endpoint"] == good_url
            assert answer["degraded_fallback"] is False

        flaky.mode = "ok"

        async def flaky_back() -> None:
            detail = await instance_health(hub, "pricing")
            assert detail[flaky_id]["status"] == "healthy"
            answer = (await hub.client.get("/services/discover/pricing")).json()
            assert len(answer["all_healthy_endpoints"]) == 2

        await eventually(flaky_back)


async def test_hanging_and_refusing_instances_become_critical(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    hanging, refusing = await loopback_services("hang"), await loopback_services()
    await refusing.go_down()
    async with running_hub(tmp_path) as hub:
        hanging_id = await hub.register("quotes", hanging, check=FAST_CHECK)
        refusing_id = await hub.register("quotes", refusing, check=FAST_CHECK)

        async def both_critical() -> None:
            detail = await instance_health(hub, "quotes")
            assert detail[hanging_id]["status"] == "critical"
            assert "timed out" in detail[hanging_id]["output"]
            assert detail[refusing_id]["status"] == "critical"
            assert "Connect" in detail[refusing_id]["output"]

        await eventually(both_critical)
        answer = (await hub.client.get("/services/discover/quotes")).json()
        assert answer["recommended_endpoint"] is None
        assert answer["all_healthy_endpoints"] == []
        endpoint = await hub.client.get("/services/quotes/endpoint")
        assert endpoint.status_code == 503
        assert endpoint.json()["error"]["code"] == "no_healthy_endpoint"
        summary = (await hub.client.get("/health/services")).json()
        assert summary["quotes"]["status"] == "critical"


async def test_slow_instances_are_degraded_and_offered_only_as_a_flagged_fallback(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    fast, slow = await loopback_services(), await loopback_services("slow", delay=0.12)
    check = FAST_CHECK | {"degraded_latency_ms": 60}
    async with running_hub(tmp_path) as hub:
        fast_id = await hub.register("risk", fast, check=check)
        slow_id = await hub.register("risk", slow, check=check)

        async def slow_degraded() -> None:
            detail = await instance_health(hub, "risk")
            assert detail[slow_id]["status"] == "degraded"
            assert detail[fast_id]["status"] == "healthy"

        await eventually(slow_degraded)
        answer = (await hub.client.get("/services/discover/risk")).json()
        assert answer["all_healthy_endpoints"] == [f"http://127.0.0.1:{fast.port}"]
        assert answer["degraded_fallback"] is False

        await fast.go_down()

        async def only_degraded_left() -> None:
            answer = (await hub.client.get("/services/discover/risk")).json()
            assert answer["degraded_fallback"] is True
            assert answer["recommended_endpoint"] == f"http://127.0.0.1:{slow.port}"
            assert answer["endpoints"][0]["status"] == "degraded"
            assert answer["confidence"][answer["recommended_endpoint"]] < 0.5

        await eventually(only_degraded_left)
        endpoint = (await hub.client.get("/services/risk/endpoint")).json()
        assert (endpoint["port"], endpoint["status"], endpoint["degraded_fallback"]) == (
            slow.port,
            "degraded",
            True,
        )
        summary = (await hub.client.get("/health/services")).json()
        assert summary["risk"]["status"] == "degraded"
        assert summary["risk"]["latency"] >= 60


async def test_health_services_has_exactly_the_seed_shape(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    api, bridge = await loopback_services(), await loopback_services()
    async with running_hub(tmp_path) as hub:
        await hub.register("api-gateway", api, check=FAST_CHECK)
        await hub.register("data-bridge", bridge, check=FAST_CHECK)

        async def checked() -> dict[str, Any]:
            summary: dict[str, Any] = (await hub.client.get("/health/services")).json()
            assert set(summary) == {"api-gateway", "data-bridge"}
            for entry in summary.values():
                assert set(entry) == {"status", "latency", "last_check"}
                assert entry["status"] == "healthy"
                assert isinstance(entry["latency"], int)
                assert entry["last_check"].endswith("Z")
            return summary

        await eventually(checked)


async def test_deregister_after_removes_an_instance_critical_too_long(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    doomed, survivor = await loopback_services("fail"), await loopback_services()
    async with running_hub(tmp_path) as hub:
        doomed_id = await hub.register("ledger", doomed, check=FAST_CHECK | {"deregister_after": 1})
        await hub.register("ledger", survivor, check=FAST_CHECK)

        async def gone() -> None:
            detail = (await hub.client.get("/services/ledger")).json()
            assert doomed_id not in {i["instance_id"] for i in detail["instances"]}
            assert hub.hub.view.get(health_key("ledger", doomed_id)) is None

        await eventually(gone)
        detail = (await hub.client.get("/services/ledger")).json()
        assert len(detail["instances"]) == 1


async def test_tcp_check(tmp_path: Path, loopback_services: ServiceFactory) -> None:
    service = await loopback_services()
    async with running_hub(tmp_path) as hub:
        iid = await hub.register("feed", service, protocol="tcp", check=FAST_CHECK)

        async def healthy() -> None:
            detail = await instance_health(hub, "feed")
            assert detail[iid]["check"]["kind"] == "tcp"
            assert detail[iid]["last_check"] is not None
            assert detail[iid]["status"] == "healthy"

        await eventually(healthy)
        await service.go_down()

        async def critical() -> None:
            assert (await instance_health(hub, "feed"))[iid]["status"] == "critical"

        await eventually(critical)


async def test_ttl_instances_are_not_probed(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    service = await loopback_services("fail")
    async with running_hub(tmp_path) as hub:
        iid = await hub.register("stream", service, protocol="grpc", ttl=30)
        http_id = await hub.register("stream-http", service, check=FAST_CHECK)

        async def http_one_probed() -> None:
            assert (await instance_health(hub, "stream-http"))[http_id]["status"] == "critical"

        await eventually(http_one_probed)
        detail = await instance_health(hub, "stream")
        assert detail[iid]["check"]["kind"] == "ttl"
        assert detail[iid]["last_check"] is None
        assert detail[iid]["status"] == "healthy"


async def test_bad_checks_are_rejected_whole(tmp_path: Path) -> None:
    async with running_hub(tmp_path, probing=False) as hub:
        base = {"name": "bad", "host": "127.0.0.1", "port": 9}
        for check, extra in [
            ({"interval": 1, "timeout": 2}, {}),
            ({"kind": "smoke"}, {}),
            ({"interval": 0}, {}),
            ({"failures_before_critical": 0}, {}),
            ({"kind": "ttl"}, {}),
            ({"interval": 5, "unknown": 1}, {}),
        ]:
            response = await hub.client.post(
                "/services/register", json=base | extra | {"check": check}
            )
            assert response.status_code == 422, (check, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert set(error) == {"code", "message", "details"}
        assert (await hub.client.get("/services/bad")).status_code == 404
        assert await hub.hub.backend.get("catalog/bad/bad-127.0.0.1-9") is None


class NativeChecksBackend(SQLiteBackend):
    """The embedded store declaring native checks, as Consul does."""

    capabilities: ClassVar[Capabilities] = Capabilities(native_health_checks=True)


async def test_no_probing_when_the_backend_checks_natively(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    service = await loopback_services("fail")
    backend = NativeChecksBackend(tmp_path / "native", poll_interval=0.02)
    await backend.open()  # an injected backend is opened and closed by its owner
    async with running_hub(tmp_path, backend=backend) as hub:
        assert hub.hub.prober is None
        health = (await hub.client.get("/health")).json()
        assert health["prober"] == {"enabled": False, "reason": "backend checks natively"}
        iid = await hub.register("native", service, check=FAST_CHECK)
        # The backend's own check reports (here: written the way an adapter would).
        record = {"status": "degraded", "latency": 45, "last_check": "2024-01-20T10:29:58Z"}
        await backend.put(health_key("native", iid), orjson.dumps(record))

        async def reported() -> None:
            summary = (await hub.client.get("/health/services")).json()
            assert summary["native"] == record

        await eventually(reported)
        assert service.requests == 0
        detail = (await hub.client.get("/health/services/native")).json()
        assert detail["checked_by"] == "backend"
    await backend.close()


async def test_an_http_service_without_a_declared_check_is_probed_with_the_defaults(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    service = await loopback_services()
    async with running_hub(tmp_path) as hub:
        iid = await hub.register("defaults", service)

        async def probed() -> None:
            detail = await instance_health(hub, "defaults")
            assert detail[iid]["last_check"] is not None
            assert detail[iid]["status"] == "healthy"

        await eventually(probed)
        check = (await instance_health(hub, "defaults"))[iid]["check"]
        assert check == {
            "kind": "http",
            "interval": 10.0,
            "timeout": 2.0,
            "failures_before_critical": 3,
            "successes_before_passing": 2,
            "degraded_latency_ms": 500.0,
            "deregister_after": None,
        }
        assert service.requests >= 1
