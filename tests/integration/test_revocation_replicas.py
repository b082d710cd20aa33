"""A token revoked through one replica ends, on another replica, the config streams and
long polls it opened there (two hub processes over one store)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.processes import HubProcess

pytestmark = pytest.mark.slow

ENDS_WITHIN = 60.0
"""Generous bound for a stream to end; without the fix it never does."""


@pytest.fixture(params=["embedded", "etcd"])
def two_replicas(
    request: pytest.FixtureRequest, tmp_path: Path, hub_processes: Callable[..., HubProcess]
) -> list[HubProcess]:
    """Replicas A and B over one store (one SQLite directory, or one etcd namespace)."""
    env = {
        "HUB_LOG_LEVEL": "warning",
        "HUB_CONFIG_KEEPALIVE": "0.5",
        "HUB_ADMIN_TOKEN": "revocation-admin-" + secrets.token_urlsafe(32),
    }
    if request.param == "embedded":
        env |= {"HUB_BACKEND": "embedded", "HUB_DATA_DIR": str(tmp_path / "store")}
    else:
        etcd = request.getfixturevalue("etcd_server")
        env |= {
            "HUB_BACKEND": "etcd",
            "HUB_ETCD_ENDPOINTS": ",".join(etcd.endpoints),
            "HUB_ETCD_NAMESPACE": f"revocation-{uuid.uuid4().hex}",
        }
    return [hub_processes(workdir=tmp_path / f"hub-{n}", env=env).start() for n in range(2)]


async def read_stream(
    client: httpx.AsyncClient, url: str, token: str, started: asyncio.Event
) -> list[tuple[str | None, Any]]:
    """Every event of an SSE stream until the hub ends it: ``(event type, data)``."""
    events: list[tuple[str | None, Any]] = []
    headers = {"authorization": f"Bearer {token}"}
    async with client.stream("GET", url, headers=headers) as resp:
        assert resp.status_code == 200, await resp.aread()
        fields: dict[str, str] = {}
        async for line in resp.aiter_lines():
            if line == "":
                if "data" in fields:
                    events.append((fields.get("event"), orjson.loads(fields["data"])))
                    started.set()
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    return events


async def visible(client: httpx.AsyncClient, url: str, token: str) -> int:
    """Wait until replica B accepts a token issued through A; the config version."""
    for _ in range(400):
        resp = await client.get(url, headers={"authorization": f"Bearer {token}"})
        if resp.status_code == 200:
            return int(resp.json()["version"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"token never accepted: {resp.status_code} {resp.text}")


async def test_revocation_through_one_replica_ends_streams_and_polls_on_another(
    two_replicas: list[HubProcess],
) -> None:
    a, b = two_replicas
    admin = {"authorization": f"Bearer {a.env['HUB_ADMIN_TOKEN']}"}
    async with httpx.AsyncClient(timeout=120) as client:
        resp = await client.post(
            f"{a.url}/tenants",
            json={"tenant_id": "revoked_co", "subscription_tier": "pro"},
            headers=admin,
        )
        assert resp.status_code == 201, resp.text
        tokens = {}
        for role, extra in (("tenant", {"tenant_id": "revoked_co"}), ("read-only", {})):
            resp = await client.post(
                f"{a.url}/tokens", json={"role": role, "name": role, **extra}, headers=admin
            )
            assert resp.status_code == 201, resp.text
            tokens[role] = (resp.json()["token"], resp.json()["record"]["id"])
        tenant_token, reader_token = tokens["tenant"][0], tokens["read-only"][0]
        version = await visible(client, f"{b.url}/config/revoked_co", tenant_token)
        await visible(client, f"{b.url}/config", reader_token)

        tenant_started, global_started = asyncio.Event(), asyncio.Event()
        tenant_stream = asyncio.create_task(
            read_stream(client, f"{b.url}/config/revoked_co/watch", tenant_token, tenant_started)
        )
        global_stream = asyncio.create_task(
            read_stream(client, f"{b.url}/config/watch", reader_token, global_started)
        )
        long_poll = asyncio.create_task(
            client.get(
                f"{b.url}/config/revoked_co",
                params={"index": version, "wait": "5m"},
                headers={"authorization": f"Bearer {tenant_token}"},
            )
        )
        await asyncio.wait_for(tenant_started.wait(), ENDS_WITHIN)
        await asyncio.wait_for(global_started.wait(), ENDS_WITHIN)
        await asyncio.sleep(0.5)  # lets the long poll reach B (else it is refused: also 401)

        for _, token_id in tokens.values():
            resp = await client.delete(f"{a.url}/tokens/{token_id}", headers=admin)
            assert resp.status_code == 200, resp.text

        for stream in (tenant_stream, global_stream):
            events = await asyncio.wait_for(stream, ENDS_WITHIN)
            assert events[0][0] == "config"
            kind, data = events[-1]
            assert kind == "error"
            assert data["error"]["code"] == "unauthorized"
            assert "revoked" in data["error"]["message"]
        polled = await asyncio.wait_for(long_poll, ENDS_WITHIN)
        assert polled.status_code == 401, polled.text
        assert polled.json()["error"]["code"] == "unauthorized"
