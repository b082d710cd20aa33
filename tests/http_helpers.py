"""Real HTTP for tests that need it: serve an ASGI app on loopback, read SSE, receive webhooks.

``httpx.ASGITransport`` buffers whole responses, so streams (SSE) and the hub's outgoing
webhook calls need real sockets; everything here binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.conftest import free_port


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, access_log=False
    )
    server = uvicorn.Server(config)
    # The test runner owns the process's signals; the server must not take them over.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@dataclass
class SSEEvent:
    """One server-sent event."""

    id: str | None
    event: str | None
    data: dict[str, Any]


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    count: int,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
    started: asyncio.Event | None = None,
) -> list[SSEEvent]:
    """The first ``count`` events of an SSE stream (keep-alive comments skipped).

    ``started`` is set once the first event (the current state) has arrived, so a test
    that writes after it knows its write comes after the stream's starting point.
    """
    events: list[SSEEvent] = []

    async def run() -> None:
        async with client.stream("GET", url, headers=headers) as resp:
            assert resp.status_code == 200, await resp.aread()
            assert resp.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            async for line in resp.aiter_lines():
                if line == "":
                    if "data" in fields:
                        events.append(
                            SSEEvent(
                                fields.get("id"), fields.get("event"), orjson.loads(fields["data"])
                            )
                        )
                        if started is not None:
                            started.set()  # subscribed, and the current state is in
                        if len(events) == count:
                            return
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")

    await asyncio.wait_for(run(), timeout)
    return events


@dataclass
class Received:
    """One request a :class:`WebhookReceiver` got."""

    body: bytes
    headers: dict[str, str]
    answered: int


@dataclass
class WebhookReceiver:
    """A loopback HTTP endpoint that records deliveries and fails the first ``fail_first``."""

    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    on_receive: Callable[[Received], None] | None = None

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            status = 503 if len(self.received) < self.fail_first else 204
            got = Received(body, dict(request.headers), status)
            self.received.append(got)
            if self.on_receive is not None:
                self.on_receive(got)
            self.arrived.set()
            return Response(status_code=status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        """Wait until ``predicate(self.received)`` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.received):
            remaining = deadline - loop.time()
            assert remaining > 0, f"webhook deliveries so far: {len(self.received)}"
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.5))
