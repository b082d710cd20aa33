"""The example trading service and the real hub as separate processes.

The service registers, becomes discoverable, receives a pushed config change, answers
orders (rejections analysed by ErrorDNA), publishes protobuf envelopes, and on SIGTERM
leaves discovery before it stops serving.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from proto.trading import orders_pb2
from shared import messages
from shared.client import HubClient
from shared.errors import ServiceNotFound
from shared.tenancy import TenantContext
from tests.conftest import free_port
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SERVICE = "order-intake"
TENANT = "company_abc"


class ServiceProcess:
    """``python -m examples.trading_service`` on loopback, stopped by PID."""

    def __init__(self, workdir: Path, hub_url: str, *extra: str, token: str) -> None:
        self.port = free_port()
        self.log_path = workdir / f"service-{self.port}.log"
        cmd = [
            sys.executable,
            "-m",
            "examples.trading_service",
            "--port",
            str(self.port),
            "--hub-url",
            hub_url,
            "--ttl",
            "10",
            "--heartbeat",
            "0.5",
            *extra,
        ]
        with open(self.log_path, "ab") as log:
            # cwd: the repository, where the examples package lives
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CENTRAL_HUB_TOKEN": token},
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"not within {timeout}s: {what}")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    proc = HubProcess(tmp_path, args=["--data-dir", str(tmp_path / "hub-data")]).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def service(hub: HubProcess, tmp_path: Path) -> Iterator[ServiceProcess]:
    with hub.client() as admin:
        issued = admin.post(
            "/tokens", json={"role": "service", "name": SERVICE, "services": [SERVICE]}
        )
        assert issued.status_code == 201, issued.text
        tenant = admin.post("/tenants", json={"tenant_id": TENANT, "subscription_tier": "pro"})
        assert tenant.status_code == 201, tenant.text
    proc = ServiceProcess(
        tmp_path,
        hub.url,
        "--drain",
        "3",
        "--config-tenant",
        TENANT,
        "--config-wait",
        # short: the hub's shutdown waits for open long polls until their wait ends
        "5",
        "--database-url",
        f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}",
        token=issued.json()["token"],
    )
    try:
        yield proc
    finally:
        proc.stop()


def discoverable(client: HubClient) -> bool:
    try:
        return client.discover(SERVICE).recommended_endpoint is not None
    except ServiceNotFound:
        return False


def test_example_service_lifecycle(hub: HubProcess, service: ServiceProcess) -> None:
    with (
        HubClient(hub.url, token=TEST_ADMIN_TOKEN) as client,
        httpx.Client(base_url=service.url, timeout=5) as http,
    ):
        # 1. registers and becomes discoverable, at the address it serves on
        eventually(lambda: discoverable(client), what=f"{SERVICE} discoverable\n{service.log()}")
        found = client.discover(SERVICE, tenant=TenantContext(tenant_id="company_abc"))
        assert found.recommended_endpoint == service.url
        assert http.get("/health").json()["registered"] is True

        # 2. it follows its tenant's configuration: a change written to the hub is
        #    pushed to the running service (long poll) and applied by its hook
        def applied_limit(expected: int) -> bool:
            limits = http.get("/config").json()["data"]["rate_limits"]
            return bool(limits.get("api_calls_per_hour") == expected)

        eventually(lambda: applied_limit(10_000), what="pro tier defaults applied")
        written = client.update_tenant_config(
            TENANT,
            {"rate_limits": {"api_calls_per_hour": 4321}, "features": {"custom_models": True}},
        )
        eventually(lambda: applied_limit(4321), timeout=15, what="pushed config applied")
        pushed = http.get("/config").json()["data"]
        assert pushed["features"]["custom_models"] is True
        assert pushed["version"] == written["effective_version"]
        assert pushed["changes"] == 2

        # 3. a rejected order is analysed by ErrorDNA; the same failure with other
        #    numbers is one group
        headers = {"x-tenant-id": "company_abc", "x-user-id": "user123"}
        first = http.post(
            "/orders", json={"symbol": "EURUSD", "side": "buy", "quantity": 0.001}, headers=headers
        )
        second = http.post(
            "/orders", json={"symbol": "XAUUSD", "side": "sell", "quantity": 0.005}, headers=headers
        )
        assert first.status_code == second.status_code == 422
        assert first.json()["error"]["code"] == "invalid_request"
        analysis = first.json()["error"]["details"]["analysis"]
        assert analysis["category"] == "validation"
        assert analysis["suggested_actions"]
        assert (
            second.json()["error"]["details"]["analysis"]["fingerprint"] == analysis["fingerprint"]
        )
        (group,) = http.get("/errors").json()["data"]["groups"]
        assert group["count"] == 2
        assert group["tenants"] == ["company_abc"]

        # the new group was reported to the hub, which lists it per service and tenant
        def reported() -> bool:
            return client.top_errors(service=SERVICE)["total_groups"] == 1

        eventually(reported, timeout=10, what="error group reported to the hub")
        (hub_group,) = client.top_errors(service=SERVICE, tenant_id=TENANT)["groups"]
        assert hub_group["fingerprint"] == analysis["fingerprint"]
        assert hub_group["category"] == "validation"
        assert hub_group["tenants"] == {TENANT: 1}

        # 4. an accepted order is published as an Order inside a MessageEnvelope that
        #    carries the caller's correlation id
        accepted = http.post(
            "/orders",
            json={"symbol": "EURUSD", "side": "buy", "quantity": 0.5, "price": 1.0851},
            headers={**headers, "x-correlation-id": "req_456"},
        )
        assert accepted.status_code == 201, accepted.text
        body = accepted.json()
        # the StandardResponse envelope: data plus who answered, for which tenant and request
        assert body["meta"] == {
            "correlation_id": "req_456",
            "tenant_id": "company_abc",
            "service": SERVICE,
            "version": "1.0.0",
        }
        assert body["data"]["risk"] == {"checked": False, "reason": "service_not_found"}
        envelope = messages.MessageEnvelope.FromString(base64.b64decode(body["data"]["envelope"]))
        assert envelope.correlation_id == "req_456"
        assert envelope.service_source == SERVICE
        order = messages.unwrap(envelope)
        assert isinstance(order, orders_pb2.Order)
        assert order.tenant_id == "company_abc"
        assert order.type == orders_pb2.ORDER_TYPE_LIMIT
        # kept through StandardDatabaseManager in the tenant's rows only
        assert body["data"]["order_id"] == order.order_id
        mine = http.get("/orders", headers=headers).json()["data"]
        assert [o["order_id"] for o in mine] == [order.order_id]
        assert http.get("/orders", headers={"x-tenant-id": "someone_else"}).json()["data"] == []
        no_tenant = http.get("/orders")
        assert no_tenant.status_code == 403
        assert no_tenant.json()["error"]["code"] == "tenant_context_required"

        # 5. SIGTERM: gone from discovery while the process still answers (draining)
        os.kill(service.proc.pid, signal.SIGTERM)
        eventually(lambda: not discoverable(client), timeout=10, what="deregistered")
        draining = http.get("/health")
        assert draining.status_code == 503
        assert draining.json()["status"] == "draining"

    service.proc.wait(30)
    # uvicorn re-raises the signal it handled once it has shut down cleanly
    assert service.proc.returncode in (0, -signal.SIGTERM), service.log()
    # every line the service wrote is a structured JSON log line naming the service
    lines = [json.loads(line) for line in service.log().splitlines()]
    assert {line["service"] for line in lines} == {SERVICE}
    messages_logged = [line["message"] for line in lines]
    assert "registered with the hub" in messages_logged
    assert "deregistered from the hub" in messages_logged
    assert [
        line["api_calls_per_hour"] for line in lines if line["message"] == "config applied"
    ] == [
        10_000,
        4321,
    ]
    rejected = next(line for line in lines if line["message"] == "order rejected")
    assert rejected["tenant_id"] == "company_abc"
    assert rejected["error_fingerprint"] == analysis["fingerprint"]
