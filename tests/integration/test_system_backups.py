"""System-wide backups with real loopback services: dependency order, timeouts, failures,
and a coordinator killed during a run (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import eventually, running_hub
from tests.processes import HubProcess

pytestmark = pytest.mark.slow


class BackupService:
    """A loopback HTTP service whose ``POST /backup`` records when it ran.

    ``mode``: ``ok`` answers ``{"location": ...}`` after ``delay`` seconds; ``fail``
    answers 500.
    """

    def __init__(self, name: str, *, delay: float = 0.0, mode: str = "ok") -> None:
        self.name = name
        self.delay = delay
        self.mode = mode
        self.calls: list[dict[str, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> BackupService:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = json.loads(await reader.readexactly(length)) if length else {}
            call = {"body": body, "started": time.monotonic(), "finished": None}
            self.calls.append(call)
            await asyncio.sleep(self.delay)
            if self.mode == "fail":
                status, payload = "500 Internal Server Error", b'{"error": "disk full"}'
            else:
                location = f"s3://backups/{self.name}/{body.get('backup_id')}"
                status, payload = "200 OK", json.dumps({"location": location}).encode()
            call["finished"] = time.monotonic()
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def register(
    api: httpx.AsyncClient, service: BackupService, depends_on: list[str], timeout: float = 10
) -> None:
    body = {
        "name": service.name,
        "host": "127.0.0.1",
        "port": service.port,
        "backup": {"endpoint": "/backup", "depends_on": depends_on, "timeout_seconds": timeout},
    }
    resp = await api.post("/services/register", json=body)
    assert resp.status_code in (200, 201), resp.text


async def finished_run(api: httpx.AsyncClient, run_id: str, timeout: float = 30) -> dict[str, Any]:
    async def done() -> dict[str, Any]:
        resp = await api.get(f"/coordination/backups/{run_id}")
        assert resp.status_code == 200, resp.text
        run: dict[str, Any] = resp.json()
        assert run["state"] in ("succeeded", "partial"), run["state"]
        return run

    return await eventually(done, timeout)


async def test_dependency_order_parallelism_timeout_and_failure(tmp_path: Path) -> None:
    db = await BackupService("db", delay=0.4).start()
    ledger = await BackupService("ledger").start()  # depends on db
    cache = await BackupService("cache").start()  # independent
    slow = await BackupService("slow", delay=3).start()
    after_slow = await BackupService("after-slow").start()  # depends on slow
    broken = await BackupService("broken", mode="fail").start()
    services = [db, ledger, cache, slow, after_slow, broken]
    try:
        async with running_hub(tmp_path / "data", probing=False, leader_ttl=2) as hub:
            api = hub.client
            await register(api, db, [])
            await register(api, ledger, ["db"])
            await register(api, cache, [])
            await register(api, slow, [], timeout=0.5)
            await register(api, after_slow, ["slow"])
            await register(api, broken, [])

            # Between runs no replica campaigns: no coordinator lease, no key.
            backend = hub.hub.backend
            assert await backend.get("leader/backup-coordinator") is None
            resp = await api.post("/coordination/backups")
            assert resp.status_code == 202, resp.text
            started = resp.json()
            assert started["state"] == "requested"
            run = await finished_run(api, started["id"])

            status = {name: entry["status"] for name, entry in run["services"].items()}
            assert status == {
                "db": "succeeded",
                "ledger": "succeeded",
                "cache": "succeeded",
                "slow": "failed",
                "after-slow": "skipped",
                "broken": "failed",
            }
            # A failure makes the run partial, with the reasons, never "succeeded".
            assert run["state"] == "partial"
            assert "no answer within 0.5s" in run["services"]["slow"]["reason"]
            assert "answered 500" in run["services"]["broken"]["reason"]
            assert "slow" in run["services"]["after-slow"]["reason"]
            assert after_slow.calls == []
            # Dependencies first; independent services in parallel.
            assert ledger.calls[0]["started"] >= db.calls[0]["finished"]
            assert cache.calls[0]["started"] < db.calls[0]["finished"]
            # One id and epoch for every call; the location each service reported.
            ids = {(c["body"]["backup_id"], c["body"]["epoch"]) for s in services for c in s.calls}
            assert ids == {(run["id"], run["epoch"])}
            assert run["services"]["db"]["location"] == f"s3://backups/db/{run['id']}"

            # History: newest first, the epoch grows.
            second = (await api.post("/coordination/backups")).json()
            assert second["epoch"] == run["epoch"] + 1
            await finished_run(api, second["id"])
            listed = (await api.get("/coordination/backups")).json()["runs"]
            assert [r["id"] for r in listed] == [second["id"], run["id"]]
            assert (
                await api.get("/coordination/backups/00000000000000000000-00000000")
            ).status_code == 404

            async def released() -> None:
                assert await backend.get("leader/backup-coordinator") is None

            await eventually(released)
    finally:
        for service in services:
            await service.stop()


async def test_a_run_survives_the_coordinator_being_killed(
    tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> None:
    data = tmp_path / "data"
    env = {"HUB_LEADER_TTL": "2"}
    replicas = [hub_processes(args=["--data-dir", str(data)], env=env).start() for _ in range(2)]
    first = await BackupService("first", delay=2.5).start()
    second = await BackupService("second").start()
    try:
        async with httpx.AsyncClient(
            base_url=replicas[0].url, headers={"authorization": f"Bearer {replicas[0].admin_token}"}
        ) as api:
            await register(api, first, [])
            await register(api, second, ["first"])
            run_id = (await api.post("/coordination/backups")).json()["id"]

            async def first_called() -> None:
                assert first.calls

            await eventually(first_called)
            run = (await api.get(f"/coordination/backups/{run_id}")).json()
            leader_pid = int(run["executed_by"][0].split("-")[-2])
            (leader,) = [r for r in replicas if r.proc is not None and r.proc.pid == leader_pid]
            survivor = next(r for r in replicas if r is not leader)
            leader.kill()  # SIGKILL mid-call: its lease expires, the survivor takes over

        async with httpx.AsyncClient(
            base_url=survivor.url, headers={"authorization": f"Bearer {survivor.admin_token}"}
        ) as api:
            run = await finished_run(api, run_id, timeout=40)
        assert run["state"] == "succeeded"
        assert len(run["executed_by"]) == 2
        assert run["executed_by"][1] != run["executed_by"][0]
        # The call in flight when the leader died was made again, under the same id.
        assert len(first.calls) == 2
        assert {c["body"]["backup_id"] for c in first.calls} == {run_id}
        assert len(second.calls) == 1
        assert second.calls[0]["started"] >= first.calls[-1]["finished"]
    finally:
        await first.stop()
        await second.stop()
