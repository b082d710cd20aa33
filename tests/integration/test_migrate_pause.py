"""``central-hub migrate`` pauses writes during the copy: a concurrent writer on another
replica (real hub processes over one store) sees ``503 read_only`` answers, and no
acknowledged write is lost or half-applied (issue 14)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from facade.coordination.backup_file import read_backup_file
from tests.integration.test_backup_cli import cli
from tests.processes import TEST_ADMIN_TOKEN, HubProcess

pytestmark = pytest.mark.slow

MAX_WRITES = 5000  # the writer stops by itself even if the CLI never returned


class Writer(threading.Thread):
    """Creates tenants one after another and records each answer, in order."""

    def __init__(self, hub: HubProcess) -> None:
        super().__init__(daemon=True)
        self.hub = hub
        self.stop = threading.Event()
        self.answers: list[tuple[str, int, str]] = []  # (tenant, status, error code)

    def run(self) -> None:
        after_stop = 0
        with self.hub.client() as client:
            for n in range(MAX_WRITES):
                if self.stop.is_set():
                    after_stop += 1
                    if after_stop > 5:  # a few writes once migrate is done
                        return
                tenant = f"w-{n}"
                resp = client.post(
                    "/tenants", json={"tenant_id": tenant, "subscription_tier": "pro"}
                )
                code = resp.json()["error"]["code"] if resp.status_code >= 400 else ""
                self.answers.append((tenant, resp.status_code, code))


def target_tenants(target_dir: Path, tmp_path: Path) -> set[str]:
    """The tenant ids in the migration target, read offline from its store."""
    out = tmp_path / "target.jsonl.gz"
    made = cli("backup", "create", "--offline", "--out", str(out), "--backend", "embedded",
               "--data-dir", str(target_dir), cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    return {kv.key.removeprefix("tenants/") for kv in read_backup_file(out).items
            if kv.key.startswith("tenants/")}  # fmt: skip


def test_migrate_refuses_writes_during_the_copy_and_loses_none(
    tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> None:
    # Two replicas over one store: migrate talks to A, the writer writes through B.
    source = ["--data-dir", str(tmp_path / "source")]
    hub = hub_processes(workdir=tmp_path / "a", args=source).start()
    replica_b = hub_processes(workdir=tmp_path / "b", args=source).start()
    token_file = tmp_path / "admin-token"
    token_file.write_text(TEST_ADMIN_TOKEN)
    connection = ["--url", hub.url, "--token-file", str(token_file)]
    # No settle time: migrate asks B itself whether it refuses writes and has drained.
    pausing = [*connection, "--replica", replica_b.url, "--settle", "0"]
    target_dir = tmp_path / "target"

    writer = Writer(replica_b)
    writer.start()
    for _ in range(1000):  # bounded: the writer has written before migrate starts
        if writer.answers:
            break
        threading.Event().wait(0.01)
    assert writer.answers, "the writer never wrote"
    moved = cli("migrate", "--to", "embedded", "--data-dir", str(target_dir), *pausing,
                cwd=tmp_path)  # fmt: skip
    writer.stop.set()
    writer.join(timeout=60)
    assert not writer.is_alive()
    assert moved.returncode == 0, moved.stderr
    assert "writes paused" in moved.stdout
    assert "writes resumed" in moved.stdout
    assert "writes were paused for" in moved.stderr

    statuses = [status for _, status, _ in writer.answers]
    assert set(statuses) <= {201, 503}, writer.answers
    refused = [i for i, (_, status, _) in enumerate(writer.answers) if status == 503]
    assert refused, "the writer never ran during the pause"
    assert {code for _, status, code in writer.answers if status == 503} == {"read_only"}
    first, last = refused[0], refused[-1]
    # One sequential writer: between the first and the last refusal nothing was accepted.
    assert all(status == 503 for _, status, _ in writer.answers[first : last + 1])
    before = {t for t, status, _ in writer.answers[:first] if status == 201}
    after = {t for t, status, _ in writer.answers[last + 1 :] if status == 201}
    assert after, "writes were not accepted again after migrate"

    # Every write acknowledged before the pause is in the target, and nothing else is.
    assert target_tenants(target_dir, tmp_path) == before
    # The source holds exactly the acknowledged writes: none lost, none half-applied.
    for replica in (hub, replica_b):
        with replica.client() as client:
            listed = client.get("/tenants").json()
            assert {t["tenant_id"] for t in listed["tenants"]} == before | after

    # A migrate that fails (the target is not empty now) still lifts its pause.
    again = cli("migrate", "--to", "embedded", "--data-dir", str(target_dir), *connection,
                cwd=tmp_path)  # fmt: skip
    assert again.returncode == 1
    assert "not empty" in again.stderr
    assert "writes resumed" in again.stdout
    with hub.client() as client:
        resp = client.post("/tenants", json={"tenant_id": "late", "subscription_tier": "pro"})
        assert resp.status_code == 201, resp.text
        assert client.get("/admin/maintenance").json()["read_only"] is False


def test_an_interrupted_migrate_lifts_its_pause(
    tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> None:
    hub = hub_processes(args=["--data-dir", str(tmp_path / "source")]).start()
    token_file = tmp_path / "admin-token"
    token_file.write_text(TEST_ADMIN_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])}
    # A long settle keeps migrate inside its pause until the signal comes.
    cmd = [sys.executable, "-m", "facade.cli.main", "migrate", "--to", "embedded",
           "--data-dir", str(tmp_path / "target"), "--url", hub.url,
           "--token-file", str(token_file), "--settle", "60"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert "writes paused" in proc.stdout.readline()
        with hub.client() as client:
            refused = client.post("/tenants", json={"tenant_id": "x", "subscription_tier": "pro"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "read_only"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "writes resumed" in out
    with hub.client() as client:
        assert client.get("/admin/maintenance").json()["read_only"] is False
        accepted = client.post("/tenants", json={"tenant_id": "x", "subscription_tier": "pro"})
        assert accepted.status_code == 201, accepted.text
    assert not (tmp_path / "target").exists() or not any((tmp_path / "target").iterdir())
