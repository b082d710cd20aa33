"""``central-hub backup`` / ``migrate`` against real hub processes, and scheduled backups."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from facade.coordination.backup_file import read_backup_file
from tests.integration.conftest import eventually, running_hub
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "facade.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_backup_create_online_offline_and_migrate_to_a_new_embedded_store(
    tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> None:
    source_dir = tmp_path / "source"
    hub = hub_processes(args=["--data-dir", str(source_dir)]).start()
    token_file = tmp_path / "admin-token"
    token_file.write_text(TEST_ADMIN_TOKEN)
    with hub.client() as client:
        assert (
            client.post(
                "/tenants", json={"tenant_id": "acme", "subscription_tier": "pro"}
            ).status_code
            == 201
        )
        for n in range(3):
            resp = client.put("/config/acme", json={"features": {f"f{n}": True}})
            assert resp.status_code == 200, resp.text
        resp = client.post("/tokens", json={"role": "tenant", "name": "t", "tenant_id": "acme"})
        tenant_token = resp.json()["token"]
        expected = {
            r: client.get(r).json()
            for r in ("/config/acme", "/config/acme/history", "/tenants/acme")
        }
        # A non-admin token gets no backup.
        with hub.client(tenant_token) as tenant_client:
            assert tenant_client.post("/admin/backups").status_code == 403

    connection = ["--url", hub.url, "--token-file", str(token_file)]
    online = cli(
        "backup", "create", "--out", str(tmp_path / "online.jsonl.gz"), *connection, cwd=tmp_path
    )
    assert online.returncode == 0, online.stderr
    summary = json.loads(online.stdout)
    assert summary["source_backend"] == "embedded"
    assert summary["counts"]["by_prefix"]["tenants"] == 1
    assert read_backup_file(tmp_path / "online.jsonl.gz").revision == summary["revision"]

    offline = cli(
        "backup", "create", "--offline", "--out", str(tmp_path / "offline.jsonl.gz"),
        "--backend", "embedded", "--data-dir", str(source_dir), cwd=tmp_path,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert read_backup_file(tmp_path / "offline.jsonl.gz").items == (
        read_backup_file(tmp_path / "online.jsonl.gz").items
    )

    wrong = cli("backup", "create", "--out", str(tmp_path / "x.gz"), "--url", hub.url,
                "--token-file", str(tmp_path / "missing"), cwd=tmp_path)  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1
    assert not (tmp_path / "x.gz").exists()

    target_dir = tmp_path / "target"
    moved = cli(
        "migrate", "--to", "embedded", "--data-dir", str(target_dir), *connection, cwd=tmp_path
    )
    assert moved.returncode == 0, moved.stderr
    assert f"HUB_DATA_DIR={target_dir}" in moved.stdout
    assert "HUB_BACKEND=embedded" in moved.stdout
    again = cli(
        "migrate", "--to", "embedded", "--data-dir", str(target_dir), *connection, cwd=tmp_path
    )
    assert again.returncode == 1
    assert "not empty" in again.stderr
    hub.stop()

    restarted = hub_processes(args=["--data-dir", str(target_dir)]).start()
    with restarted.client() as client:
        assert {r: client.get(r).json() for r in expected} == expected
    with restarted.client(tenant_token) as client:
        assert client.get("/config/acme").status_code == 200


async def test_scheduled_backups_run_on_the_elected_replica_only_and_keep_the_newest(
    tmp_path: Path,
) -> None:
    backups = tmp_path / "backups"
    settings = {
        "probing": False,
        "backup_interval": 0.2,
        "backup_dir": backups,
        "backup_keep": 2,
        "leader_ttl": 2,
    }
    async with (
        running_hub(tmp_path / "data", **settings) as one,
        running_hub(tmp_path / "data", **settings) as two,
    ):
        await one.client.post("/tenants", json={"tenant_id": "acme", "subscription_tier": "pro"})
        schedulers = [one.hub.backups, two.hub.backups]
        assert schedulers[0] is not None
        assert schedulers[1] is not None

        async def three_runs() -> None:
            assert sum(s.runs for s in schedulers if s is not None) >= 3

        await eventually(three_runs)
        ran = [s for s in schedulers if s is not None and s.runs]
        assert len(ran) == 1
        assert ran[0].election.is_leader
        files = sorted(backups.glob("hub-backup-*.jsonl.gz"))
        assert len(files) == 2
        assert read_backup_file(files[-1]).header["counts"]["by_prefix"]["tenants"] == 1
