"""Fixtures for the API suite: the real hub app over each backend kind, in-process."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from facade import HubSettings, create_app
from facade.runtime import Hub
from tests.conftest import BackendFactory

ADMIN_TOKEN = "conformance-admin-" + secrets.token_urlsafe(24)


@dataclass
class RunningHub:
    """A started hub app and an HTTP client speaking to it over ASGI (as admin)."""

    app: FastAPI
    hub: Hub
    client: httpx.AsyncClient

    def client_with(self, token: str | None) -> httpx.AsyncClient:
        """Another client to the same hub, with ``token`` (or none)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://hub.test", headers=headers
        )

    async def issue(self, role: str, **extra: object) -> str:
        """A fresh token of ``role``, issued through the API."""
        resp = await self.client.post("/tokens", json={"role": role, "name": role, **extra})
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["token"]
        return token


@pytest.fixture
async def running_hub(backend_factory: BackendFactory, tmp_path: Path) -> AsyncIterator[RunningHub]:
    """A started hub over a fresh backend of the parametrized kind."""
    backend = await backend_factory()
    settings = HubSettings(
        data_dir=tmp_path / "unused",
        max_body_bytes=16_384,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        # Instances here point at ports nothing listens on; active health checks would
        # (rightly) mark them critical. Probing is tested in tests/integration.
        probing=False,
    )
    app = create_app(settings, backend=backend)
    hub: Hub = app.state.hub
    await hub.start()
    transport = httpx.ASGITransport(app=app)
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub.test", headers=admin
    ) as client:
        yield RunningHub(app=app, hub=hub, client=client)
    await hub.stop()


@pytest.fixture
def api(running_hub: RunningHub) -> httpx.AsyncClient:
    """The HTTP client of :func:`running_hub`."""
    return running_hub.client


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the standard error shape with ``status`` and ``code``; return the error."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error
