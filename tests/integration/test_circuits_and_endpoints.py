"""Load-balanced endpoints and tenant-tier circuits through the HTTP API.

Circuits use the seed's failure rates with short open times (a setting) so HALF_OPEN is
reached within a test; nothing here asserts how long anything took.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.conftest import (
    FAST_CHECK,
    RunningHub,
    ServiceFactory,
    eventually,
    running_hub,
)
from tests.servers import ControllableService

SHORT_OPEN = {
    "circuit_thresholds": {
        "free": {"failure_rate": 0.5, "open_seconds": 60},
        "pro": {"failure_rate": 0.3, "open_seconds": 30},
        "enterprise": {"failure_rate": 0.1, "open_seconds": 0.5},
    },
    "circuit_minimum_calls": 10,
    "circuit_half_open_successes": 2,
}
ENTERPRISE = {"x-tenant-id": "acme", "x-subscription-tier": "enterprise"}
FREE = {"x-tenant-id": "tiny", "x-subscription-tier": "free"}


async def report(hub: RunningHub, name: str, success: bool, **extra: Any) -> dict[str, Any]:
    response = await hub.client.post(
        f"/circuits/{name}/report", json={"success": success, "latency_ms": 12.5} | extra
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_endpoint_answers_the_seed_shape_with_every_strategy(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    one, two = await loopback_services(), await loopback_services()
    async with running_hub(tmp_path, probing=False) as hub:
        await hub.register("data-bridge", one)
        await hub.register("data-bridge", two)
        for strategy in (None, "p2c", "round_robin", "least_load", "random"):
            params = {"strategy": strategy} if strategy else {}
            response = await hub.client.get("/services/data-bridge/endpoint", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert {"host", "port", "load"} <= set(body)
            assert body["host"] == "127.0.0.1"
            assert body["port"] in (one.port, two.port)
            assert body["strategy"] == (strategy or "p2c")
        bad = await hub.client.get("/services/data-bridge/endpoint", params={"strategy": "best"})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_request"
        missing = await hub.client.get("/services/nowhere/endpoint")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "service_not_found"


async def test_weights_reach_round_robin_through_the_api(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    light, heavy = await loopback_services(), await loopback_services()
    async with running_hub(tmp_path, probing=False) as hub:
        await hub.register("orders", light, weight=1)
        await hub.register("orders", heavy, weight=3)
        ports: Counter[int] = Counter()
        for _ in range(40):
            answer = await hub.client.get(
                "/services/discover/orders", params={"strategy": "round_robin"}
            )
            ports[int(answer.json()["recommended_endpoint"].rsplit(":", 1)[1])] += 1
        assert ports == {light.port: 10, heavy.port: 30}


async def test_least_load_follows_heartbeat_load(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    busy, idle = await loopback_services(), await loopback_services()
    async with running_hub(tmp_path, probing=False) as hub:
        busy_id = await hub.register("matcher", busy)
        idle_id = await hub.register("matcher", idle)
        for iid, load in ((busy_id, 0.9), (idle_id, 0.2)):
            beat = await hub.client.put(
                f"/services/matcher/instances/{iid}/heartbeat", json={"load": load}
            )
            assert beat.status_code == 200
        for _ in range(20):
            body = (
                await hub.client.get(
                    "/services/matcher/endpoint", params={"strategy": "least_load"}
                )
            ).json()
            assert (body["port"], body["load"], body["instance_id"]) == (idle.port, 0.2, idle_id)


async def test_open_circuit_removes_endpoints_for_that_tier_only_then_recovers(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    service = await loopback_services()
    async with running_hub(tmp_path, probing=False, **SHORT_OPEN) as hub:
        await hub.register("ml-processing", service)
        for success in [True] * 8 + [False] * 2:  # 20 % failures: above enterprise's 10 %
            body = await report(hub, "ml-processing", success)
        assert body["tiers"]["enterprise"]["state"] == "OPEN"
        assert body["tiers"]["pro"]["state"] == "CLOSED"
        assert body["tiers"]["free"]["state"] == "CLOSED"
        assert body["tiers"]["enterprise"]["trip"]["failure_rate"] == 0.2
        metrics = (await hub.client.get("/metrics")).text
        assert 'hub_circuit_state{service="ml-processing",tier="enterprise"} 2.0' in metrics
        assert 'hub_circuit_state{service="ml-processing",tier="free"} 0.0' in metrics

        state = (await hub.client.get("/circuits/ml-processing", headers=ENTERPRISE)).json()
        assert (state["state"], state["subscription_tier"]) == ("OPEN", "enterprise")
        assert state["tiers"]["enterprise"]["retry_at"].endswith("Z")

        discovery = (
            await hub.client.get("/services/discover/ml-processing", headers=ENTERPRISE)
        ).json()
        assert discovery["recommended_endpoint"] is None
        assert discovery["all_healthy_endpoints"] == []
        assert discovery["circuit"]["state"] == "OPEN"
        assert discovery["circuit"]["retry_at"] is not None
        free = (await hub.client.get("/services/discover/ml-processing", headers=FREE)).json()
        assert free["recommended_endpoint"] == f"http://127.0.0.1:{service.port}"
        assert free["circuit"]["state"] == "CLOSED"

        refused = await hub.client.get("/services/ml-processing/endpoint", headers=ENTERPRISE)
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "circuit_open"
        assert error["details"]["retry_at"] == discovery["circuit"]["retry_at"]
        assert int(refused.headers["Retry-After"]) >= 1

        async def half_open() -> None:
            state = (await hub.client.get("/circuits/ml-processing", headers=ENTERPRISE)).json()
            assert state["state"] == "HALF_OPEN"

        await eventually(half_open)
        trial = (
            await hub.client.get("/services/discover/ml-processing", headers=ENTERPRISE)
        ).json()
        assert trial["recommended_endpoint"] is not None  # trial calls may go through
        assert trial["circuit"]["state"] == "HALF_OPEN"

        await report(hub, "ml-processing", True, tier="enterprise")
        body = await report(hub, "ml-processing", True, tier="enterprise")
        assert body["tiers"]["enterprise"]["state"] == "CLOSED"
        assert body["tiers"]["enterprise"]["window"]["calls"] == 0


async def test_failed_trial_reopens(tmp_path: Path, loopback_services: ServiceFactory) -> None:
    service = await loopback_services()
    async with running_hub(tmp_path, probing=False, **SHORT_OPEN) as hub:
        await hub.register("scoring", service)
        for _ in range(10):
            await report(hub, "scoring", False, tier="enterprise")
        first = (await hub.client.get("/circuits/scoring")).json()["tiers"]["enterprise"]

        async def half_open() -> None:
            tiers = (await hub.client.get("/circuits/scoring")).json()["tiers"]
            assert tiers["enterprise"]["state"] == "HALF_OPEN"

        await eventually(half_open)
        body = await report(hub, "scoring", False, tier="enterprise")
        again = body["tiers"]["enterprise"]
        assert again["state"] == "OPEN"
        assert again["opened_at"] > first["opened_at"]
        assert again["trip"] == {"reason": "trial_failed"}


async def test_circuit_state_is_shared_by_replicas(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    service = await loopback_services()
    async with (
        running_hub(tmp_path, probing=False, **SHORT_OPEN) as first,
        running_hub(tmp_path, probing=False, **SHORT_OPEN) as second,
    ):
        await first.register("settlement", service)
        for _ in range(10):
            await report(first, "settlement", False, tier="pro")

        async def second_sees_open() -> None:
            response = await second.client.get("/circuits/settlement")
            assert response.status_code == 200, response.text  # its view may lag a moment
            state = response.json()
            assert state["tiers"]["pro"]["state"] == "OPEN"
            assert state["tiers"]["pro"]["trip"]["reason"] == "failure_rate"
            pro = {"x-tenant-id": "p", "x-subscription-tier": "pro"}
            answer = (await second.client.get("/services/discover/settlement", headers=pro)).json()
            assert answer["circuit"]["state"] == "OPEN"

        await eventually(second_sees_open)
        # The second replica's own window is empty: the state came from the backend.
        state = (await second.client.get("/circuits/settlement")).json()
        assert state["tiers"]["pro"]["window"]["calls"] == 0


async def test_probe_failures_open_every_tier(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    services: list[ControllableService] = [await loopback_services() for _ in range(3)]
    settings = SHORT_OPEN | {"circuit_minimum_calls": 4}
    check = FAST_CHECK | {"failures_before_critical": 3}
    async with running_hub(tmp_path, **settings) as hub:
        for service in services:
            await hub.register("pnl", service, check=check)

        async def probed() -> None:
            summary = (await hub.client.get("/health/services")).json()
            assert summary["pnl"]["last_check"] is not None

        await eventually(probed)
        for service in services:
            service.mode = "fail"

        async def all_open() -> None:
            tiers = (await hub.client.get("/circuits/pnl")).json()["tiers"]
            assert {t["state"] for t in tiers.values()} <= {"OPEN", "HALF_OPEN"}

        await eventually(all_open)


async def test_bad_reports_are_refused(tmp_path: Path, loopback_services: ServiceFactory) -> None:
    service = await loopback_services()
    async with running_hub(tmp_path, probing=False) as hub:
        await hub.register("fx", service)
        for body in (
            {},
            {"success": "maybe"},
            {"success": True, "latency_ms": -1},
            {"success": True, "tier": "platinum"},
            {"success": True, "extra": 1},
        ):
            response = await hub.client.post("/circuits/fx/report", json=body)
            assert response.status_code == 422, body
            assert response.json()["error"]["code"] == "invalid_request"
        unknown = await hub.client.post("/circuits/nothing/report", json={"success": False})
        assert unknown.status_code == 404
        assert await hub.hub.backend.get("circuits/nothing/free") is None
        assert (await hub.client.get("/circuits/fx")).json()["state"] == "CLOSED"


async def test_tier_restricted_service_refuses_lower_tiers(
    tmp_path: Path, loopback_services: ServiceFactory
) -> None:
    service = await loopback_services()
    async with running_hub(tmp_path, probing=False) as hub:
        await hub.register("premium-ml", service, subscription_requirements=["enterprise"])
        for path in ("/services/premium-ml/endpoint", "/circuits/premium-ml"):
            response = await hub.client.get(path, headers=FREE)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "tier_not_allowed"
        ok = await hub.client.get("/services/premium-ml/endpoint", headers=ENTERPRISE)
        assert ok.status_code == 200
