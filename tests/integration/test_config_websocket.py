"""WebSocket config push (``/config/{tenant_id}/ws``) on a real uvicorn server: the SSE
stream's authorisation, versions, resume and end-on-revocation, through the shared
client over either transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from facade import HubSettings, create_app
from shared.client import AsyncHubClient, ConfigSnapshot, HubClient
from shared.errors import InvalidRequest, TenantMismatch, Unauthorized
from tests.http_helpers import serve
from tests.processes import TEST_ADMIN_TOKEN

ADMIN = {"authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[str]:
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        admin_token=TEST_ADMIN_TOKEN,  # type: ignore[arg-type]
        config_keepalive=0.5,
        probing=False,
    )
    app = create_app(settings)
    await app.state.hub.start()
    try:
        async with serve(app) as url:
            async with httpx.AsyncClient(base_url=url, headers=ADMIN) as admin:
                for tenant in ("acme", "other"):
                    resp = await admin.post(
                        "/tenants", json={"tenant_id": tenant, "subscription_tier": "pro"}
                    )
                    assert resp.status_code == 201, resp.text
            yield url
    finally:
        await app.state.hub.stop()


async def issue(url: str, role: str, **extra: Any) -> tuple[str, str]:
    """A fresh token (and its id) from the hub's API."""
    async with httpx.AsyncClient(base_url=url, headers=ADMIN) as admin:
        resp = await admin.post("/tokens", json={"role": role, "name": role, **extra})
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["token"]
        return token, token.split("_", 1)[1].split(".")[0]


async def set_limit(url: str, tenant: str, calls: int) -> int:
    async with httpx.AsyncClient(base_url=url, headers=ADMIN) as admin:
        resp = await admin.patch(
            f"/config/{tenant}", json={"rate_limits": {"api_calls_per_hour": calls}}
        )
        assert resp.status_code == 200, resp.text
        version: int = resp.json()["effective_version"]
        return version


async def take(stream: AsyncIterator[ConfigSnapshot], n: int) -> list[ConfigSnapshot]:
    """The next ``n`` snapshots, bounded in time."""
    return [await asyncio.wait_for(anext(stream), 10) for _ in range(n)]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_versions_and_resume_are_the_same_over_either_transport(
    hub_url: str, transport: Any
) -> None:
    async with AsyncHubClient(hub_url, token=TEST_ADMIN_TOKEN) as client:
        stream = client.stream_config("acme", transport=transport)
        (first,) = await take(stream, 1)  # the current version first
        written = await set_limit(hub_url, "acme", 4321)
        (pushed,) = await take(stream, 1)
        assert pushed.version == written > first.version
        assert pushed.config["rate_limits"]["api_calls_per_hour"] == 4321
        await stream.aclose()

        # resume after the first version: what was missed (the current one) comes first
        resumed = client.stream_config("acme", last_event_id=first.version, transport=transport)
        (missed,) = await take(resumed, 1)
        assert missed.version == written
        await resumed.aclose()

        # resume at the newest version: nothing until the next write
        caught_up = client.stream_config("acme", last_event_id=written, transport=transport)
        pending = asyncio.ensure_future(anext(caught_up))
        await asyncio.sleep(0.3)
        assert not pending.done()
        newer = await set_limit(hub_url, "acme", 99)
        snapshot = await asyncio.wait_for(pending, 10)
        assert snapshot.version == newer
        await caught_up.aclose()


async def test_the_socket_has_the_streams_authorisation(hub_url: str) -> None:
    async with AsyncHubClient(hub_url) as anonymous:
        with pytest.raises(Unauthorized):
            await take(anonymous.stream_config("acme", transport="websocket"), 1)
    token, _ = await issue(hub_url, "tenant", tenant_id="other")
    async with AsyncHubClient(hub_url, token=token) as other:
        with pytest.raises(TenantMismatch):
            await take(other.stream_config("acme", transport="websocket"), 1)
    async with AsyncHubClient(hub_url, token=TEST_ADMIN_TOKEN) as admin:
        with pytest.raises(InvalidRequest):
            await take(admin.stream_config("acme", last_event_id=-1, transport="websocket"), 1)
    # the refusal is an HTTP answer in the standard shape at the handshake
    ws_url = hub_url.replace("http://", "ws://") + "/config/acme/ws"
    with pytest.raises(InvalidStatus) as refused:
        await connect(ws_url)
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body or b"")
    assert body["error"]["code"] == "unauthorized"


async def recv_until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every frame until the hub closes the socket (keep-alives included); bounded."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except ConnectionClosed:
        return frames


async def test_revoking_the_token_ends_the_socket(hub_url: str) -> None:
    token, token_id = await issue(hub_url, "tenant", tenant_id="acme")
    ws_url = hub_url.replace("http://", "ws://") + "/config/acme/ws"
    async with connect(ws_url, additional_headers={"authorization": f"Bearer {token}"}) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["type"] == "config"
        assert first["id"] == first["data"]["version"]
        async with httpx.AsyncClient(base_url=hub_url, headers=ADMIN) as admin:
            assert (await admin.delete(f"/tokens/{token_id}")).status_code == 200
        frames = await recv_until_closed(ws)
        assert frames[-1]["type"] == "error"
        assert frames[-1]["error"]["code"] == "unauthorized"
        assert ws.close_code == 4401

    # through the client: the hub's error, not a silent end
    token, token_id = await issue(hub_url, "tenant", tenant_id="acme")
    async with AsyncHubClient(hub_url, token=token) as client:
        stream = client.stream_config("acme", transport="websocket")
        await take(stream, 1)
        async with httpx.AsyncClient(base_url=hub_url, headers=ADMIN) as admin:
            assert (await admin.delete(f"/tokens/{token_id}")).status_code == 200
        with pytest.raises(Unauthorized):
            await take(stream, 1)


async def test_the_sync_client_subscribes_over_the_socket_too(hub_url: str) -> None:
    """The blocking client (run in a thread, as a plain script would) gets the current
    version, then the one written after it, over the WebSocket."""
    seen: list[ConfigSnapshot] = []
    first_seen = asyncio.Event()
    loop = asyncio.get_running_loop()

    def follow() -> None:
        with HubClient(hub_url, token=TEST_ADMIN_TOKEN) as client:
            for snapshot in client.stream_config("acme", transport="websocket"):
                seen.append(snapshot)
                loop.call_soon_threadsafe(first_seen.set)
                if len(seen) == 2:
                    return

    follower = asyncio.ensure_future(asyncio.to_thread(follow))
    await asyncio.wait_for(first_seen.wait(), 10)
    written = await set_limit(hub_url, "acme", 777)
    await asyncio.wait_for(follower, 10)
    assert [s.version for s in seen][1] == written > seen[0].version
    assert seen[1].config["rate_limits"]["api_calls_per_hour"] == 777
