"""The answer shapes the Consul adapter relies on, asserted against the fake *and* a live agent.

Consul's HTTP API documents ``/v1/txn`` (https://developer.hashicorp.com/consul/api-docs/txn):
a committed transaction answers 200 with ``{"Results": [{"KV": entry}], "Errors": null}``,
one result per operation that yields an entry (``set``, ``cas``, ``lock``, ``unlock``,
``get``, ``check-index``; a result's ``Value`` is null except for ``get``); a rolled-back
one answers 409 with ``{"Results": null, "Errors": [{"OpIndex": n, "What": "..."}]}``.
Catalog and health answers carry ``CreateIndex``/``ModifyIndex`` and an ``X-Consul-Index``
header. Each test runs against the fake agent (tests/contract/fake_consul.py) and against
the live agent of the session (``consul agent -dev``, see tests/consul_agent.py), so the
fake's shapes are checked against a real Consul wherever one is installed.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.contract.fake_consul import FakeConsul

ENTRY_FIELDS = {"LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"}


@pytest.fixture(params=["fake", "live"])
def agent(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """An HTTP client to the fake agent, or to the live one."""
    if request.param == "fake":
        fake = FakeConsul()
        fake.start()
        try:
            with httpx.Client(base_url=fake.address, timeout=10) as client:
                yield client
        finally:
            fake.stop()
        return
    address: str = request.getfixturevalue("consul_address")
    base = address if "//" in address else f"http://{address}"
    token = os.environ.get("CONSUL_HTTP_TOKEN")
    headers = {"X-Consul-Token": token} if token else {}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def prefix(agent: httpx.Client) -> Iterator[str]:
    """A KV prefix of the test's own, deleted afterwards."""
    name = f"hub-shapes-{uuid.uuid4().hex}/"
    yield name
    agent.delete(f"/v1/kv/{name}", params={"recurse": "true"})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def txn(agent: httpx.Client, *ops: dict[str, Any]) -> httpx.Response:
    return agent.put("/v1/txn", json=[{"KV": op} for op in ops])


def committed(resp: httpx.Response) -> list[dict[str, Any]]:
    """The KV entries of a committed transaction, after checking the answer's shape."""
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["Errors"] is None
    assert isinstance(body["Results"], list)
    entries = []
    for result in body["Results"]:
        assert set(result) == {"KV"}
        entry = result["KV"]
        assert ENTRY_FIELDS <= set(entry) <= ENTRY_FIELDS | {"Session"}
        for name in ("LockIndex", "Flags", "CreateIndex", "ModifyIndex"):
            assert isinstance(entry[name], int)
        assert entry["CreateIndex"] > 0
        assert entry["ModifyIndex"] >= entry["CreateIndex"]
        entries.append(entry)
    return entries


def rolled_back(resp: httpx.Response, op_index: int, key: str) -> str:
    """Check the documented 409 shape; return the error's ``What``."""
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert body["Results"] is None
    assert [set(error) for error in body["Errors"]] == [{"OpIndex", "What"}]
    (error,) = body["Errors"]
    assert error["OpIndex"] == op_index
    assert isinstance(error["What"], str)
    assert key in error["What"]
    what: str = error["What"]
    return what


def read(agent: httpx.Client, key: str) -> dict[str, Any] | None:
    resp = agent.get(f"/v1/kv/{key}")
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    assert int(resp.headers["X-Consul-Index"]) > 0
    (entry,) = resp.json()
    assert set(entry) >= ENTRY_FIELDS
    found: dict[str, Any] = entry
    return found


# -- committed transactions, verb by verb --------------------------------------------


def test_check_not_exists_then_set(agent: httpx.Client, prefix: str) -> None:
    key = f"{prefix}a"
    (entry,) = committed(
        txn(
            agent,
            {"Verb": "check-not-exists", "Key": key},
            {"Verb": "set", "Key": key, "Value": b64(b"one"), "Flags": 1},
        )
    )
    # check-not-exists yields no result; set yields the entry without its value.
    assert (entry["Key"], entry["Flags"], entry["Value"], entry["LockIndex"]) == (key, 1, None, 0)
    assert entry["CreateIndex"] == entry["ModifyIndex"]
    stored = read(agent, key)
    assert stored is not None
    assert stored["ModifyIndex"] == entry["ModifyIndex"]


def test_check_index_cas_and_get(agent: httpx.Client, prefix: str) -> None:
    key = f"{prefix}b"
    (created,) = committed(txn(agent, {"Verb": "set", "Key": key, "Value": b64(b"one")}))
    index = created["ModifyIndex"]
    checked, swapped, got = committed(
        txn(
            agent,
            {"Verb": "check-index", "Key": key, "Index": index},
            {"Verb": "cas", "Key": key, "Index": index, "Value": b64(b"two"), "Flags": 2},
            {"Verb": "get", "Key": key},
        )
    )
    assert (checked["Key"], checked["ModifyIndex"], checked["Value"]) == (key, index, None)
    assert swapped["Value"] is None
    assert swapped["Flags"] == 2
    assert swapped["ModifyIndex"] > index
    assert swapped["CreateIndex"] == created["CreateIndex"]
    # Only get carries the value (base64), as of the transaction's own writes.
    assert base64.b64decode(got["Value"]) == b"two"
    assert got["ModifyIndex"] == swapped["ModifyIndex"]


def test_lock_and_unlock(agent: httpx.Client, prefix: str) -> None:
    key = f"{prefix}c"
    session = agent.put(
        "/v1/session/create", json={"Behavior": "delete", "TTL": "30s", "LockDelay": "0s"}
    )
    assert session.status_code == 200, session.text
    session_id = session.json()["ID"]
    try:
        (locked,) = committed(
            txn(agent, {"Verb": "lock", "Key": key, "Value": b64(b"v"), "Session": session_id})
        )
        assert (locked["Session"], locked["LockIndex"]) == (session_id, 1)
        (unlocked,) = committed(
            txn(agent, {"Verb": "unlock", "Key": key, "Value": b64(b"v"), "Session": session_id})
        )
        assert "Session" not in unlocked
        assert unlocked["LockIndex"] == 1
        assert unlocked["ModifyIndex"] > locked["ModifyIndex"]
    finally:
        agent.put(f"/v1/session/destroy/{session_id}")


def test_delete_cas(agent: httpx.Client, prefix: str) -> None:
    key = f"{prefix}d"
    (created,) = committed(txn(agent, {"Verb": "set", "Key": key, "Value": b64(b"v")}))
    deleted = committed(
        txn(agent, {"Verb": "delete-cas", "Key": key, "Index": created["ModifyIndex"]})
    )
    assert deleted == []  # a delete yields no result
    assert read(agent, key) is None
    # An absent key counts as deleted: 200 again, not a conflict.
    assert committed(txn(agent, {"Verb": "delete-cas", "Key": key, "Index": 7})) == []


# -- rolled-back transactions: 409 with Errors ----------------------------------------


def test_every_failing_verb_rolls_back_with_the_documented_errors_shape(
    agent: httpx.Client, prefix: str
) -> None:
    key, missing = f"{prefix}e", f"{prefix}missing"
    (created,) = committed(txn(agent, {"Verb": "set", "Key": key, "Value": b64(b"v")}))
    index = created["ModifyIndex"]
    stale = index + 1000
    harmless = {"Verb": "check-index", "Key": key, "Index": index}
    failing = [
        ({"Verb": "check-not-exists", "Key": key}, key),
        ({"Verb": "check-index", "Key": key, "Index": stale}, key),
        ({"Verb": "check-index", "Key": missing, "Index": 5}, missing),
        ({"Verb": "cas", "Key": key, "Index": stale, "Value": b64(b"x")}, key),
        ({"Verb": "cas", "Key": key, "Index": 0, "Value": b64(b"x")}, key),
        ({"Verb": "get", "Key": missing}, missing),
        ({"Verb": "delete-cas", "Key": key, "Index": stale}, key),
    ]
    for op, named in failing:
        # The failing op second: OpIndex must point at it, and the first op's effect (a
        # write where there is one) must be rolled back with it.
        write_first = {"Verb": "set", "Key": f"{prefix}rolled-back", "Value": b64(b"no")}
        rolled_back(txn(agent, write_first, op), 1, named)
        assert read(agent, f"{prefix}rolled-back") is None, op
        rolled_back(txn(agent, harmless, op), 1, named)
    after = read(agent, key)
    assert after is not None
    assert after["ModifyIndex"] == index


# -- catalog and health answers carry raft indexes ------------------------------------


def test_catalog_and_health_answers_carry_create_and_modify_indexes(agent: httpx.Client) -> None:
    name = f"hub-shapes-{uuid.uuid4().hex[:12]}"
    registered = agent.put(
        "/v1/agent/service/register",
        json={
            "ID": f"{name}-1",
            "Name": name,
            "Address": "127.0.0.1",
            "Port": 1,
            "Meta": {"hub-managed": "true"},
            "Check": {"TTL": "30s", "Status": "passing"},
        },
    )
    assert registered.status_code == 200, registered.text
    try:
        services = agent.get("/v1/catalog/services")
        assert services.status_code == 200
        assert int(services.headers["X-Consul-Index"]) > 0
        assert name in services.json()

        health = agent.get(f"/v1/health/service/{name}")
        assert health.status_code == 200
        header_index = int(health.headers["X-Consul-Index"])
        (node_entry,) = health.json()
        assert {"Node", "Service", "Checks"} <= set(node_entry)
        indexed = [node_entry["Node"], node_entry["Service"], *node_entry["Checks"]]
        for part in indexed:
            assert isinstance(part["CreateIndex"], int), part
            assert part["CreateIndex"] > 0, part
            assert part["ModifyIndex"] >= part["CreateIndex"], part
        assert header_index >= node_entry["Service"]["ModifyIndex"]
        service_checks = [c for c in node_entry["Checks"] if c["ServiceID"] == f"{name}-1"]
        assert [c["Status"] for c in service_checks] == ["passing"]

        state = agent.get("/v1/health/state/any")
        assert state.status_code == 200
        assert int(state.headers["X-Consul-Index"]) > 0
        mine = [c for c in state.json() if c["ServiceID"] == f"{name}-1"]
        assert len(mine) == 1
        assert mine[0]["CreateIndex"] > 0
        assert mine[0]["ModifyIndex"] >= mine[0]["CreateIndex"]
    finally:
        agent.put(f"/v1/agent/service/deregister/{name}-1")
