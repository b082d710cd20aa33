"""Rolling deployments with real processes: the hub, the local executor and its instances.

Four v1 instances of a BaseService run as processes started by
``examples/local_executor``; the hub (probing on) rolls them to v2 two at a time while a
sampler reads discovery throughout.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.local_executor.executor import LocalExecutor
from shared.client import HubClient
from shared.errors import DeploymentActive
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SERVICE = "pricing-engine"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    proc = HubProcess(tmp_path / "hub", env={"HUB_PROBING": "true", "HUB_LEADER_TTL": "2"})
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def executor_for(hub: HubProcess, workdir: Path) -> LocalExecutor:
    command = [
        sys.executable,
        "-m",
        "examples.local_executor.demo_service",
        "--name",
        SERVICE,
        "--port",
        "{port}",
        "--version",
        "{version}",
        "--hub-url",
        hub.url,
        "--check-interval",
        "0.5",
    ]
    env = {"CENTRAL_HUB_TOKEN": TEST_ADMIN_TOKEN, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return LocalExecutor(
        command, hub_urls=[hub.url], token=TEST_ADMIN_TOKEN, workdir=workdir, cwd=REPO, env=env
    )


def wait_for_instances(client: httpx.Client, count: int, version: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = client.get(f"/services/discover/{SERVICE}")
        if resp.status_code == 200:
            endpoints = resp.json()["endpoints"]
            if len(endpoints) == count:
                return
        time.sleep(0.2)
    raise AssertionError(f"{count} {version} instances never became discoverable")


class Sampler(threading.Thread):
    """Reads discovery and the service's instances in turn until told to stop."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(
            base_url=url, timeout=5, headers={"authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
        )
        self.done = threading.Event()
        self.samples: list[tuple[float, set[str]]] = []
        """(time the discovery request was sent, instance ids it offered)."""
        self.seen_draining: dict[str, float] = {}
        """Instance id -> time an answer showing it draining was received."""

    def run(self) -> None:
        while not self.done.is_set():
            sent = time.monotonic()
            found = self.client.get(f"/services/discover/{SERVICE}").json()
            self.samples.append((sent, {e["instance_id"] for e in found["endpoints"]}))
            svc = self.client.get(f"/services/{SERVICE}").json()
            received = time.monotonic()
            for inst in svc["instances"]:
                if inst["draining"]:
                    self.seen_draining.setdefault(inst["instance_id"], received)
        self.client.close()

    def violations(self) -> list[str]:
        problems = []
        for sent, offered in self.samples:
            if len(offered) < 2:
                problems.append(f"only {len(offered)} healthy endpoints offered at {sent}")
            for iid in offered:
                seen = self.seen_draining.get(iid)
                if seen is not None and sent > seen:
                    problems.append(f"{iid} offered at {sent} after it was seen draining")
        return problems


def deploy(hub: HubProcess, **extra: Any) -> dict[str, Any]:
    """The spec's call, through the shared client."""
    with HubClient(hub.url, token=TEST_ADMIN_TOKEN) as central_hub:
        record = central_hub.coordinate_deployment(
            {"service": SERVICE, "version": "v2", "strategy": "rolling", "batch_size": 2} | extra
        )
        with pytest.raises(DeploymentActive):  # one active deployment per service
            central_hub.coordinate_deployment({"service": SERVICE, "version": "v3"})
        assert central_hub.get_deployment(record["id"])["id"] == record["id"]
        return record


def test_rolling_from_v1_to_v2_keeps_discovery_safe(hub: HubProcess, tmp_path: Path) -> None:
    executor = executor_for(hub, tmp_path / "instances")
    sampler = Sampler(hub.url)
    try:
        with hub.client() as client:
            for _ in range(4):
                executor.start("v1")
            wait_for_instances(client, 4, "v1")
            sampler.start()
            dep = deploy(hub, min_healthy_seconds=1.0)
            assert [len(batch) for batch in dep["plan"]] == [2, 2]
            final = executor.follow(dep["id"], timeout=120)
            sampler.done.set()
            sampler.join(10)
            assert final["state"] == "succeeded", (final["reason"], final["events"][-6:])
            svc = client.get(f"/services/{SERVICE}").json()
            assert sorted(i["version"] for i in svc["instances"]) == ["v2"] * 4
            assert not any(i["draining"] for i in svc["instances"])
            assert sorted(executor.versions.values()) == ["v2"] * 4
            # Every v1 process was replaced exactly once.
            assert len(executor.replaced) == 4
            assert len({old for old, _ in executor.replaced}) == 4
        assert len(sampler.samples) > 20
        assert len(sampler.seen_draining) == 4
        assert sampler.violations() == []
        # The drained services learnt it through their heartbeat (BaseService.on_draining).
        logs = [p.read_text() for p in (tmp_path / "instances").glob("instance-*.log")]
        assert sum("draining: replaced by version v2" in text for text in logs) >= 1
    finally:
        sampler.done.set()
        executor.stop_all()


def test_a_failing_v2_stops_the_deployment(hub: HubProcess, tmp_path: Path) -> None:
    executor = executor_for(hub, tmp_path / "instances")
    try:
        with hub.client() as client:
            for _ in range(4):
                executor.start("v1")
            wait_for_instances(client, 4, "v1")
            dep = deploy(hub, min_healthy_seconds=5.0)
            later = set(dep["plan"][1])
            # The new version's health answers 503: the prober marks it critical.
            final = executor.follow(dep["id"], timeout=120, extra=["--broken"])
            assert final["state"] == "failed", final
            assert "health check" in final["reason"]
            rollback = [e for e in final["events"] if e["type"] == "rollback"]
            assert rollback[0]["previous_version"] == "v1"
            found = client.get(f"/services/discover/{SERVICE}").json()
            assert {e["instance_id"] for e in found["endpoints"]} >= later
            svc = client.get(f"/services/{SERVICE}").json()
            assert not any(i["draining"] for i in svc["instances"])
            assert sorted(executor.versions.values()).count("v1") == 2
    finally:
        executor.stop_all()
