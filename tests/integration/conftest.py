"""Integration fixtures: hub processes that are always stopped after the test, in-process
hubs, and real loopback services.

An in-process hub is the real application (``create_app``) with its lifespan running and
an embedded backend in a temporary directory, requests going through httpx's ASGI
transport as the test admin. Several hubs on one directory are several replicas sharing
one backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from adapters import Backend
from facade.app import create_app
from facade.runtime import Hub
from facade.settings import load_settings
from tests.processes import ADMIN_HEADERS, TEST_ADMIN_TOKEN, HubProcess
from tests.servers import ControllableService, Mode

T = TypeVar("T")

FAST_CHECK = {"interval": 0.3, "timeout": 0.25, "failures_before_critical": 2}


@pytest.fixture
def hub_processes(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Factory for real hub processes; every one started is stopped by PID afterwards."""
    started: list[HubProcess] = []

    def make(**kwargs: Any) -> HubProcess:
        proc = HubProcess(kwargs.pop("workdir", tmp_path), **kwargs)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


class RunningHub:
    """One in-process hub replica and an HTTP client for it."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    async def register(self, name: str, service: ControllableService, **fields: Any) -> str:
        body = {"name": name, "host": service.host, "port": service.port} | fields
        response = await self.client.post("/services/register", json=body)
        assert response.status_code in (200, 201), response.text
        instance_id: str = response.json()["instance_id"]
        return instance_id


@contextlib.asynccontextmanager
async def running_hub(
    data_dir: Path, backend: Backend | None = None, **settings: Any
) -> AsyncIterator[RunningHub]:
    """A started hub on ``data_dir``; stopped (releasing leadership) on exit."""
    settings = {"admin_token": TEST_ADMIN_TOKEN} | settings
    app = create_app(load_settings(data_dir=data_dir, **settings), backend=backend)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub", headers=ADMIN_HEADERS
        ) as client:
            yield RunningHub(app, client)


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    """Retry ``check`` until it returns without an AssertionError (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


ServiceFactory = Callable[..., Awaitable[ControllableService]]


@pytest.fixture
async def loopback_services() -> AsyncIterator[ServiceFactory]:
    """Starts switchable HTTP services on 127.0.0.1 and stops them all afterwards."""
    started: list[ControllableService] = []

    async def start(mode: Mode = "ok", delay: float = 0.0) -> ControllableService:
        service = await ControllableService(mode, delay).start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()
