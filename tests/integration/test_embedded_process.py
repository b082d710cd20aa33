"""The hub as a real process on the embedded backend: start-up, durability, replicas."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow

HubFactory = Callable[..., HubProcess]


def test_bad_setting_stops_startup_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "facade.cli.main", "run"],
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
        [sys.executable, "-m", "facade.cli.main", "run", "--backend", "zookeeper"],
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


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facade.cli.main", *args],
        env={**os.environ, "HUB_ADMIN_TOKEN": TEST_ADMIN_TOKEN, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unusable_data_dir_stops_startup_with_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli(
        "run", "--port", str(free_port()), "--data-dir", str(blocker / "data"), cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "data directory" in lines[0]
    assert "HUB_DATA_DIR" in lines[0]


def test_unreadable_embedded_store_stops_startup_with_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hub.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    result = run_cli("run", "--port", str(free_port()), "--data-dir", str(data), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "embedded store" in lines[0]
    assert "HUB_DATA_DIR" in lines[0]


def test_unreachable_backend_is_fatal_only_with_require_backend(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_cli(
        "run",
        "--port",
        str(free_port()),
        "--backend",
        "etcd",
        "--etcd-endpoints",
        nowhere,
        "--require-backend",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert nowhere in lines[0]
    assert "--require-backend" in lines[0]
    # Without the flag: a stale-tolerant start that says which endpoint it tried.
    hub = hub_processes(args=["--backend", "etcd", "--etcd-endpoints", nowhere]).start()
    with hub.client() as client:
        assert client.get("/health").status_code == 503
    assert nowhere in hub.log()


def test_slowloris_clients_are_dropped_while_discovery_keeps_answering(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    hub = hub_processes(
        args=["--data-dir", str(tmp_path / "d")], env={"HUB_HEADER_TIMEOUT": "2"}
    ).start()
    with hub.client() as client:
        registered = client.post(
            "/services/register", json={"name": "quotes", "host": "127.0.0.1", "port": 8400}
        )
        assert registered.status_code == 201
        request = b"GET /services/discover/quotes HTTP/1.1\r\nHost: hub\r\nX-Slow: "
        slow: list[socket.socket] = []
        try:
            for _ in range(200):
                sock = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
                sock.setblocking(False)
                slow.append(sock)
            open_ = set(range(len(slow)))
            sent = 0
            deadline = time.monotonic() + 120
            while open_:
                assert time.monotonic() < deadline, f"{len(open_)} slow clients still open"
                for i in list(open_):
                    try:
                        if slow[i].recv(1024) == b"":
                            open_.discard(i)  # the hub closed it
                            continue
                    except BlockingIOError:
                        pass
                    except OSError:
                        open_.discard(i)
                        continue
                    try:
                        slow[i].send(request[sent % len(request) : sent % len(request) + 1])
                    except OSError:
                        open_.discard(i)
                sent += 1
                answer = client.get("/services/discover/quotes")
                assert answer.status_code == 200
                assert answer.json()["recommended_endpoint"] == "http://127.0.0.1:8400"
                time.sleep(1)  # one header byte per second per client
        finally:
            for sock in slow:
                sock.close()
    assert "Traceback" not in hub.log()
