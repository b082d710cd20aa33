"""Endpoint selection and circuit breakers through HubClient against a real hub process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shared.client import HubClient
from shared.tenancy import TenantContext
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow

HubFactory = Callable[..., HubProcess]
FREE = TenantContext(tenant_id="company_free", tier="free")
ENTERPRISE = TenantContext(tenant_id="bigcorp", tier="enterprise")
# TTL checks: the instances are kept healthy by our heartbeats, no listener needed.
TTL_CHECK = {"kind": "ttl"}


@pytest.fixture
def client(hub_processes: HubFactory, tmp_path: Path) -> HubClient:
    hub = hub_processes(args=["--data-dir", str(tmp_path / "data")]).start()
    with hub.client() as admin:
        paths = admin.get("/openapi.json").json()["paths"]
    if "/circuits/{name}" not in paths or "/services/{name}/endpoint" not in paths:
        pytest.skip("this hub has no circuits/endpoint API yet (issue 4 not merged here)")
    return HubClient(hub.url, token=TEST_ADMIN_TOKEN)


def test_load_balanced_endpoint_follows_reported_load(client: HubClient) -> None:
    with client:
        busy = client.register("ml-processing", "127.0.0.1", 8021, ttl=60, check=TTL_CHECK)
        idle = client.register("ml-processing", "127.0.0.1", 8022, ttl=60, check=TTL_CHECK)
        client.heartbeat("ml-processing", busy.instance_id, load=0.9)
        client.heartbeat("ml-processing", idle.instance_id, load=0.1)

        picks = {
            client.get_load_balanced_endpoint("ml-processing", "least_load").port for _ in range(5)
        }
        assert picks == {8022}
        chosen = client.get_load_balanced_endpoint("ml-processing", "least_load")
        assert chosen.load == pytest.approx(0.1)
        assert chosen.url == "http://127.0.0.1:8022"
        found = client.discover("ml-processing", strategy="least_load")
        assert found.recommended_endpoint == "http://127.0.0.1:8022"
        assert set(found.all_healthy_endpoints) == {
            "http://127.0.0.1:8021",
            "http://127.0.0.1:8022",
        }


def test_reported_failures_open_the_free_tiers_circuit(client: HubClient) -> None:
    with client:
        client.register("risk-management", "127.0.0.1", 8011, ttl=60, check=TTL_CHECK)
        assert client.get_circuit_state("risk-management") == "CLOSED"
        for _ in range(20):
            client.report_outcome("risk-management", success=False, latency_ms=900, tier="free")

        assert client.get_circuit_state("risk-management", tier="free") == "OPEN"
        assert client.get_circuit_state("risk-management", tenant=FREE) == "OPEN"
        # other tiers' circuits are their own
        assert client.get_circuit_state("risk-management", tier="enterprise") == "CLOSED"
        assert client.discover("risk-management", tenant=FREE).recommended_endpoint is None
        assert client.discover("risk-management", tenant=ENTERPRISE).recommended_endpoint == (
            "http://127.0.0.1:8011"
        )
