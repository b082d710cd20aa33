"""A deployment survives its driving replica: SIGKILL the leader mid-batch, another
replica carries on from the stored state (no instance drained twice, none forgotten)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import HubProcess

pytestmark = pytest.mark.slow

SERVICE = "risk-engine"


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


def leads(client: httpx.Client) -> bool:
    return bool(client.get("/health").json()["deployments"]["leader"])


def batch_of(client: httpx.Client, dep_id: str, index: int) -> list[str] | None:
    resp = client.get(f"/deployments/{dep_id}")
    if resp.status_code == 404:
        return None  # created on the other replica; this one's view has not polled it yet
    assert resp.status_code == 200, resp.text
    batch = resp.json()["batch"]
    return batch["members"] if batch is not None and batch["index"] == index else None


def replace(client: httpx.Client, old: list[str], ports: list[int]) -> None:
    """The executor's part, through whichever replica is alive."""
    for iid in old:
        assert client.delete(f"/services/{SERVICE}/instances/{iid}").status_code == 200
    for port in ports:
        body = {"name": SERVICE, "host": "127.0.0.1", "port": port, "version": "v2"}
        assert client.post("/services/register", json=body).status_code == 201


def test_another_replica_finishes_the_deployment_after_sigkill(
    tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    env = {"HUB_LEADER_TTL": "2"}
    first = hub_processes(args=data, env=env).start()
    with first.client() as a:
        eventually(lambda: leads(a))
        second = hub_processes(args=data, env=env).start()
        for n in range(4):
            body = {"name": SERVICE, "host": "127.0.0.1", "port": 19300 + n, "version": "v1"}
            assert a.post("/services/register", json=body).status_code == 201
        body = {"service": SERVICE, "version": "v2", "batch_size": 2, "min_healthy_seconds": 0.5}
        dep = a.post("/deployments", json=body).json()
    with second.client() as b:
        assert not leads(b)
        drained = eventually(lambda: batch_of(b, dep["id"], 0))
        first.kill()  # SIGKILL mid-batch: the lease must expire before anyone takes over
        replace(b, drained, [19310, 19311])
        eventually(lambda: leads(b))
        second_batch = eventually(lambda: batch_of(b, dep["id"], 1))
        replace(b, second_batch, [19312, 19313])
        final = eventually(
            lambda: (r := b.get(f"/deployments/{dep['id']}").json())["state"] == "succeeded" and r
        )
        svc = b.get(f"/services/{SERVICE}").json()
    draining = Counter(e["instance_id"] for e in final["events"] if e["type"] == "draining")
    assert sorted(draining) == sorted(dep["plan"][0] + dep["plan"][1])
    assert set(draining.values()) == {1}  # none drained twice, none forgotten
    assert [e["batch"] for e in final["events"] if e["type"] == "batch_started"] == [0, 1]
    assert sorted(i["version"] for i in svc["instances"]) == ["v2"] * 4
