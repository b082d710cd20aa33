"""The hub as a real process on the embedded backend: start-up, durability, replicas."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.processes import HubProcess

pytestmark = pytest.mark.slow

HubFactory = Callable[..., HubProcess]


def test_bad_setting_stops_startup_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "facade.cli", "run"],
        env={"HUB_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "port" in lines[0]
    assert "HUB_PORT" in lines[0]
    flag = subprocess.run(
        [sys.executable, "-m", "facade.cli", "run", "--backend", "zookeeper"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert flag.returncode == 2
    assert "backend" in flag.stderr
    assert len(flag.stderr.strip().splitlines()) == 1


def test_acknowledged_registrations_survive_kill_9(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    hub = hub_processes(args=["--data-dir", str(data)]).start()
    with hub.client() as client:
        ids = []
        for i in range(50):
            resp = client.post(
                "/services/register",
                json={"name": f"svc-{i % 5}", "host": "127.0.0.1", "port": 9000 + i},
            )
            assert resp.status_code == 201
            ids.append(resp.json()["instance_id"])
    hub.kill()
    again = hub_processes(args=["--data-dir", str(data)], port=hub.port).start()
    with again.client() as client:
        listing = client.get("/services/").json()["services"]
    seen = {i["instance_id"] for svc in listing.values() for i in svc["instances"]}
    assert seen == set(ids)


def test_two_processes_on_one_store_see_each_others_writes(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    data = str(tmp_path / "shared")
    a = hub_processes(args=["--data-dir", data]).start()
    b = hub_processes(args=["--data-dir", data]).start()
    with a.client() as ca, b.client() as cb:
        iid = ca.post(
            "/services/register", json={"name": "orders", "host": "127.0.0.1", "port": 8300}
        ).json()["instance_id"]
        deadline = time.monotonic() + 10
        while cb.get("/services/discover/orders").status_code != 200:
            assert time.monotonic() < deadline, "replica B never saw A's registration"
            time.sleep(0.05)
        assert cb.get("/services/discover/orders").json()["recommended_endpoint"] == (
            "http://127.0.0.1:8300"
        )
        assert cb.delete(f"/services/orders/instances/{iid}").status_code == 200
        deadline = time.monotonic() + 10
        while ca.get("/services/orders").status_code != 404:
            assert time.monotonic() < deadline, "replica A never saw B's deregistration"
            time.sleep(0.05)


def test_sigterm_shuts_down_cleanly(hub_processes: HubFactory, tmp_path: Path) -> None:
    hub = hub_processes(args=["--data-dir", str(tmp_path / "d")]).start()
    hub.stop()
    assert hub.proc is not None
    # uvicorn re-raises SIGTERM after a graceful shutdown so the exit status tells why.
    assert hub.proc.returncode in (0, -15)
    assert "Application shutdown complete" in hub.log()
    assert "Traceback" not in hub.log()
