"""Serving the hub over HTTP: uvicorn with a header-read deadline and a connection cap.

uvicorn has a keep-alive timeout (idle connections between requests) and
``limit_concurrency`` (503 beyond a number of connections and tasks), but no deadline
for a request's headers: a client that sends one header byte a second keeps its
connection, and with it a slot of the connection cap, forever (slowloris). The protocol
classes here add that deadline to both of uvicorn's HTTP/1.1 implementations.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from facade.settings import HubSettings

log = logging.getLogger("central_hub.server")


class _HeaderDeadline:
    """Closes a connection whose request headers are not complete ``header_timeout`` after
    it opened, or after the first byte of a later request on it."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def _arm_header_deadline(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection whose request headers took too long")
            self.transport.close()


class GuardedH11Protocol(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the header deadline."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional; uvicorn then uses h11
        return None

    class GuardedHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the header deadline."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_header_deadline()

        def on_headers_complete(self) -> None:
            self._disarm_header_deadline()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol


def guarded_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """The protocol uvicorn's ``auto`` would pick (httptools, else h11), with the deadline."""
    base = _httptools_protocol() or GuardedH11Protocol
    guarded: type[asyncio.Protocol] = type(
        base.__name__, (base,), {"header_timeout": header_timeout}
    )
    return guarded


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (raises OSError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(app: Any, settings: HubSettings, sock: socket.socket) -> None:
    """Run ``app`` on the already bound ``sock`` until SIGINT/SIGTERM."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        http=guarded_protocol(settings.header_timeout),
        timeout_keep_alive=settings.keepalive_timeout,
        limit_concurrency=settings.max_connections,
        # Long polls and event streams would otherwise hold a SIGTERM for up to their
        # wait (minutes); after this many seconds the remaining requests are cancelled.
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
