"""Security at the process level: bootstrap token, refused weak secrets, dev mode, CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.processes import HubProcess

pytestmark = pytest.mark.slow

HubFactory = Callable[..., HubProcess]


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facade.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def wait_for_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_first_start_writes_a_private_bootstrap_token_once(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    hub = hub_processes(args=["--data-dir", str(data)], admin_token=None).start()
    token_file = data / "admin-token"
    wait_for_file(token_file)
    time.sleep(0.2)
    token = token_file.read_text().strip()
    assert token.startswith("chub_")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert hub.log().count(token) == 1  # printed once, never logged again
    with hub.client(token=None) as anonymous:
        assert anonymous.post("/services/register", json={}).status_code == 401
    with hub.client(token=token) as admin:
        ok = admin.post("/services/register", json={"name": "a", "host": "h", "port": 1})
        assert ok.status_code == 201
    hub.stop()
    again = hub_processes(args=["--data-dir", str(data)], admin_token=None, port=hub.port).start()
    time.sleep(0.5)
    assert token_file.read_text().strip() == token
    assert "bootstrap admin token" not in again.log().split("Started server process")[-1]
    with again.client(token=token) as admin:
        assert admin.get("/services/a").status_code == 200


@pytest.mark.parametrize("weak", ["changeme", "short-token", "a" * 40])
def test_weak_configured_admin_token_is_refused(tmp_path: Path, weak: str) -> None:
    result = cli("run", env={"HUB_ADMIN_TOKEN": weak}, cwd=tmp_path)
    assert result.returncode == 2
    assert "admin_token" in result.stderr
    assert weak not in result.stderr  # never echo a secret, even a bad one
    assert len(result.stderr.strip().splitlines()) == 1


def test_dev_mode_is_loopback_only_and_loud(hub_processes: HubFactory, tmp_path: Path) -> None:
    refused = cli("run", "--dev", "--host", "hub.internal", cwd=tmp_path)
    assert refused.returncode == 2
    assert "dev" in refused.stderr
    hub = hub_processes(args=["--dev", "--data-dir", str(tmp_path / "d")], admin_token=None)
    hub.start()
    with hub.client(token=None) as anyone:
        resp = anyone.post("/services/register", json={"name": "a", "host": "h", "port": 1})
        assert resp.status_code == 201
    assert "DEV MODE: authentication is OFF" in hub.log()


def test_cli_creates_lists_and_revokes_tokens(hub_processes: HubFactory, tmp_path: Path) -> None:
    hub = hub_processes(args=["--data-dir", str(tmp_path / "d")]).start()
    env = {"HUB_TOKEN": hub.admin_token or ""}
    created = cli(
        "token",
        "--url",
        hub.url,
        "create",
        "--role",
        "service",
        "--name",
        "pricing",
        "--service",
        "pricing",
        env=env,
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    assert issued["record"]["services"] == ["pricing"]
    with hub.client(token=issued["token"]) as service:
        ok = service.post("/services/register", json={"name": "pricing", "host": "h", "port": 1})
        assert ok.status_code == 201
    listed = json.loads(cli("token", "--url", hub.url, "list", env=env, cwd=tmp_path).stdout)
    assert issued["record"]["id"] in {t["id"] for t in listed["tokens"]}
    assert issued["token"].split(".")[1] not in json.dumps(listed)
    revoked = cli(
        "token", "--url", hub.url, "revoke", issued["record"]["id"], env=env, cwd=tmp_path
    )
    assert revoked.returncode == 0, revoked.stderr
    with hub.client(token=issued["token"]) as service:
        assert service.get("/services/").status_code == 401
    denied = cli("token", "--url", hub.url, "list", env={"HUB_TOKEN": "chub_x.y"}, cwd=tmp_path)
    assert denied.returncode == 1
    assert "unauthorized" in denied.stderr
