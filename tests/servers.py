"""Real HTTP services on 127.0.0.1 for health tests, switchable to fail, hang or slow down.

A minimal HTTP/1.1 server on ``asyncio.start_server`` (keep-alive supported), so a probe
goes through a real socket, a real request and a real status line. Modes:

* ``ok``: ``200`` with a small JSON body;
* ``fail``: ``503``;
* ``slow``: ``200`` after ``delay`` seconds;
* ``hang``: reads the request and never answers (until the server stops);
* :meth:`ControllableService.go_down` closes the listening socket (connection refused)
  and :meth:`ControllableService.come_back` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["ok", "fail", "slow", "hang"]


class ControllableService:
    """One switchable HTTP service on a loopback port."""

    def __init__(self, mode: Mode = "ok", delay: float = 0.0) -> None:
        self.mode: Mode = mode
        self.delay = delay
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        """Always loopback."""
        return "127.0.0.1"

    async def start(self) -> ControllableService:
        """Listen (on a free port the first time, the same port afterwards)."""
        self._stopping.clear()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def go_down(self) -> None:
        """Stop listening and drop open connections: probes see connection refused."""
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def come_back(self) -> None:
        """Listen again on the same port."""
        await self.start()

    async def stop(self) -> None:
        """Stop for good."""
        await self.go_down()

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        try:
            while not self._stopping.is_set():
                request_line = await reader.readline()
                if not request_line:
                    return
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing in them matters here
                self.requests += 1
                mode = self.mode
                if mode == "hang":
                    await self._stopping.wait()
                    return
                if mode == "slow":
                    await asyncio.sleep(self.delay)
                status = "503 Service Unavailable" if mode == "fail" else "200 OK"
                body = b'{"status": "down"}' if mode == "fail" else b'{"status": "ok"}'
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
