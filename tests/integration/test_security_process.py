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
        [sys.executable, "-m", "facade.cli.main", *args],
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


def admin_works(hub: HubProcess, token: str) -> bool:
    with hub.client(token=token) as admin:
        return admin.get("/tokens").status_code == 200


def wait_for_log(hub: HubProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in hub.log():
        assert hub.proc is not None
        assert hub.proc.poll() is None, f"hub exited:\n{hub.log()}"
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{hub.log()}"
        time.sleep(0.05)


@pytest.mark.parametrize("step", ["before-commit", "after-commit", "after-file"])
def test_bootstrap_killed_at_any_step_leaves_a_working_admin_token(
    hub_processes: HubFactory, tmp_path: Path, step: str
) -> None:
    data = tmp_path / "data"
    token_file = data / "admin-token"
    first = hub_processes(
        args=["--data-dir", str(data)],
        admin_token=None,
        env={"HUB_TEST_BOOTSTRAP_PAUSE": step},
    ).start()
    wait_for_log(first, f"bootstrap paused at {step}")
    first.kill()
    again = hub_processes(args=["--data-dir", str(data)], admin_token=None, port=first.port)
    again.start()
    wait_for_file(token_file)
    deadline = time.monotonic() + 20
    while not admin_works(again, token_file.read_text().strip()):
        assert time.monotonic() < deadline, f"the token file's token never worked:\n{again.log()}"
        time.sleep(0.1)
    assert list(data.glob("admin-token.*")) == []  # no pending file left behind
    if step == "after-commit":
        # The committed token was never shown: this start finishes the job and says so.
        assert "recovered from an interrupted bootstrap" in again.log()


def test_bootstrap_marker_without_token_record_is_recovered(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    # The state a start killed between the old two writes left: marker, no token.
    import asyncio

    import orjson

    from adapters.sqlite import SQLiteBackend
    from facade.access.tokens import BOOTSTRAP_KEY

    data = tmp_path / "data"

    async def mark_only() -> None:
        backend = SQLiteBackend(data)
        await backend.open()
        await backend.put(BOOTSTRAP_KEY, orjson.dumps({"at": "2026-01-01T00:00:00Z"}))
        await backend.close()

    asyncio.run(mark_only())
    hub = hub_processes(args=["--data-dir", str(data)], admin_token=None).start()
    token_file = data / "admin-token"
    wait_for_file(token_file)
    time.sleep(0.2)
    token = token_file.read_text().strip()
    assert admin_works(hub, token)
    assert "recovered from an interrupted bootstrap" in hub.log()
    assert hub.log().count(token) == 1


def test_start_on_a_taken_port_fails_at_once_and_does_not_lock_the_operator_out(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    import socket

    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("run", "--port", str(port), "--data-dir", str(data), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(port) in lines[0]
    assert "HUB_PORT" in lines[0]
    hub = hub_processes(args=["--data-dir", str(data)], admin_token=None).start()
    token_file = data / "admin-token"
    wait_for_file(token_file)
    time.sleep(0.2)
    assert admin_works(hub, token_file.read_text().strip())


def test_token_cli_follows_the_hubs_environment_and_names_failing_fields(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    data = tmp_path / "elsewhere"
    hub = hub_processes(args=["--data-dir", str(data)], admin_token=None).start()
    wait_for_file(data / "admin-token")
    time.sleep(0.2)
    workdir = tmp_path / "cwd"  # holds no hub-data/: the token must come from HUB_DATA_DIR
    workdir.mkdir()
    hub_env = {"HUB_PORT": str(hub.port), "HUB_HOST": "127.0.0.1", "HUB_DATA_DIR": str(data)}
    listed = cli("token", "list", env=hub_env, cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    assert [t["created_by"] for t in json.loads(listed.stdout)["tokens"]] == ["bootstrap"]
    # --url and --token-file after the action too.
    after = cli(
        "token",
        "list",
        "--url",
        hub.url,
        "--token-file",
        str(data / "admin-token"),
        cwd=workdir,
    )
    assert after.returncode == 0, after.stderr
    refused = cli("token", "create", "--role", "emperor", "--name", "x", env=hub_env, cwd=workdir)
    assert refused.returncode == 1
    assert "invalid_request" in refused.stderr
    assert "role" in refused.stderr.split("validation", 1)[1]


def test_shutdown_during_bootstrap_waits_for_it_to_finish(
    hub_processes: HubFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    token_file = data / "admin-token"
    first = hub_processes(
        args=["--data-dir", str(data)],
        admin_token=None,
        env={"HUB_TEST_BOOTSTRAP_PAUSE": "before-commit:5"},
    ).start()
    wait_for_log(first, "bootstrap paused at before-commit")
    first.stop()  # SIGTERM while the bootstrap is half-way
    assert first.proc is not None
    assert first.proc.returncode in (0, -15)
    assert token_file.exists(), first.log()
    token = token_file.read_text().strip()
    assert first.log().count(token) == 1  # finished, and shown, before the exit
    again = hub_processes(args=["--data-dir", str(data)], admin_token=None, port=first.port)
    again.start()
    assert admin_works(again, token)
    time.sleep(0.5)
    # Same port, same log file: only this start's part counts.
    assert "bootstrap admin token" not in again.log().split("Started server process")[-1]


async def test_replicas_bootstrapping_one_store_issue_one_working_token(
    tmp_path: Path,
) -> None:
    import asyncio
    import contextlib

    from facade.access.tokens import TOKENS_PREFIX
    from tests.integration.conftest import running_hub

    data = tmp_path / "data"
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(running_hub(data, admin_token=None)) for _ in range(4)
        ]
        await asyncio.gather(*(r.hub.wait_bootstrapped() for r in replicas))
        tokens = [kv for kv in replicas[0].hub.view.items(TOKENS_PREFIX)]
        assert len(tokens) == 1
        token = (data / "admin-token").read_text().strip()
        for replica in replicas:
            answer = await replica.client.get(
                "/tokens", headers={"authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 200
    assert list(data.glob("admin-token.*")) == []
