"""The header-read deadline on both of uvicorn's HTTP/1.1 protocols (facade/cli/server.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import uvicorn

from facade.cli.server import GuardedH11Protocol, _httptools_protocol, bind


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


PROTOCOLS = {"h11": GuardedH11Protocol, "httptools": _httptools_protocol()}


@pytest.mark.parametrize("implementation", sorted(PROTOCOLS))
async def test_slow_headers_are_cut_off_and_complete_requests_served(implementation: str) -> None:
    base = PROTOCOLS[implementation]
    if base is None:
        pytest.skip("httptools is not installed")
    protocol = type("Guarded", (base,), {"header_timeout": 0.5})
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(hello, http=protocol, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    writers: list[asyncio.StreamWriter] = []

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not server.started:
            assert loop.time() < deadline, "server never started"
            await asyncio.sleep(0.02)
        # A connection that sends nothing, and one that trickles a header a byte at a time.
        silent, _ = await connect()
        reader, writer = await connect()
        trickle = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
        closed = False
        for byte in trickle:
            writer.write(bytes([byte]))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(100), 0.1) == b"":
                    closed = True
                    break
            assert loop.time() < deadline, "the slow connection was never closed"
        assert closed
        assert await asyncio.wait_for(silent.read(100), 30) == b""
        # A keep-alive connection: served, then its slow second request is cut off too.
        reader, writer = await connect()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"ok"), 30)
        assert answer.startswith(b"HTTP/1.1 200")
        writer.write(b"GET / HTTP/1.1\r\n")
        assert await asyncio.wait_for(reader.read(100), 30) == b""
    finally:
        for opened in writers:
            opened.close()
            with contextlib.suppress(ConnectionError):
                await opened.wait_closed()
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
