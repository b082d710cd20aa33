"""The watch-fed in-memory view every read is answered from (DESIGN.md section 4).

One backend watch per hub process feeds a mirror of the keyspace; listeners (the catalog
index, tenant directory, ...) keep derived indexes current from the same events, so one
write wakes one watch per replica and the fan-out happens in memory. Writers wait for
:meth:`StateView.wait_for` so a client reads its own writes from the same replica. When
the backend is unreachable the view keeps answering and says it is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Iterator
from typing import Protocol

from adapters import Backend, EventType, KeyValue, WatchEvent
from shared.backoff import Backoff
from shared.errors import HubError, RevisionCompacted

log = logging.getLogger("central_hub.view")


class ViewListener(Protocol):
    """Something that keeps a derived index from the keys under one prefix."""

    def reset(self, items: dict[str, KeyValue]) -> None:
        """Rebuild from a full snapshot of the listener's prefix."""

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """Apply one PUT or DELETE under the listener's prefix."""


class StateView:
    """A mirror of the backend keyspace at :attr:`revision`, kept current by one watch."""

    def __init__(
        self,
        backend: Backend,
        *,
        unmirrored_prefixes: tuple[str, ...] = ("audit/",),
        retry_interval: float = 0.5,
        max_retry_interval: float = 5.0,
    ) -> None:
        self.backend = backend
        self.unmirrored_prefixes = unmirrored_prefixes
        self.retry_interval = retry_interval
        self.max_retry_interval = max_retry_interval
        self.revision = 0
        self.synced = False
        self.stale = True
        self.last_error: str | None = None
        self._data: dict[str, KeyValue] = {}
        self._listeners: list[tuple[str, ViewListener]] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_ids = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._first_sync: asyncio.Event | None = None
        self._backend_open = False

    # -- lifecycle ------------------------------------------------------------------

    def add_listener(self, prefix: str, listener: ViewListener) -> None:
        """Register ``listener`` for keys under ``prefix`` (before :meth:`start`)."""
        self._listeners.append((prefix, listener))

    async def start(self, *, backend_open: bool, timeout: float) -> None:
        """Start following the backend; wait up to ``timeout`` for the first sync.

        If the backend is not reachable yet, the hub starts anyway (stale, unsynced) and
        the view keeps trying in the background.
        """
        self._backend_open = backend_open
        self._first_sync = asyncio.Event()
        self._task = asyncio.create_task(self._follow(), name="state-view")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._first_sync.wait()

    async def stop(self) -> None:
        """Stop following; pending waiters are released."""
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    # -- reads ----------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        """The mirrored value of ``key``."""
        return self._data.get(key)

    def items(self, prefix: str) -> Iterator[KeyValue]:
        """Mirrored keys under ``prefix`` (unordered)."""
        return (kv for key, kv in self._data.items() if key.startswith(prefix))

    async def wait_for(self, revision: int, timeout: float) -> bool:
        """Wait until the view reflects ``revision``; False on timeout."""
        if self.revision >= revision:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (revision, next(self._waiter_ids), fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return self.revision >= revision
        return True

    # -- following the backend ------------------------------------------------------

    async def _follow(self) -> None:
        backoff = Backoff(self.retry_interval, self.max_retry_interval)
        need_snapshot = True
        while True:
            try:
                if not self._backend_open:
                    await self.backend.open()
                    self._backend_open = True
                if need_snapshot:
                    await self._load_snapshot()
                    need_snapshot = False
                else:
                    await self.backend.current_revision()  # liveness before resuming
                    self._mark_live()
                async for event in self.backend.watch("", start_revision=self.revision + 1):
                    self._on_event(event)
                    backoff.reset()
                raise HubError("the backend watch ended")
            except asyncio.CancelledError:
                raise
            except RevisionCompacted:
                log.warning("view fell behind compaction at revision %d; resyncing", self.revision)
                need_snapshot = True
            except HubError as exc:
                self._mark_stale(exc)
                await asyncio.sleep(backoff.next())
            except Exception as exc:  # a bug in a listener must not stop the feed
                log.exception("view feed failed; resyncing")
                self._mark_stale(exc)
                need_snapshot = True
                await asyncio.sleep(backoff.next())

    def _mark_stale(self, exc: BaseException) -> None:
        if not self.stale:
            log.warning("backend unreachable, serving a stale view: %s", exc)
        self.stale = True
        self.last_error = str(exc) or type(exc).__name__

    def _mark_live(self) -> None:
        if self.last_error is not None:
            log.info("backend reachable again at revision %d", self.revision)
        self.stale = False
        self.last_error = None

    def _mirrored(self, key: str) -> bool:
        return not key.startswith(self.unmirrored_prefixes)

    async def _load_snapshot(self) -> None:
        snapshot = await self.backend.range("")
        self._data = {kv.key: kv for kv in snapshot.items if self._mirrored(kv.key)}
        for prefix, listener in self._listeners:
            listener.reset({k: kv for k, kv in self._data.items() if k.startswith(prefix)})
        self.synced = True
        self._mark_live()
        self._advance(snapshot.revision)
        if self._first_sync is not None:
            self._first_sync.set()

    def _on_event(self, event: WatchEvent) -> None:
        self._mark_live()
        if event.type is not EventType.PROGRESS and self._mirrored(event.key):
            previous = self._data.get(event.key)
            if event.type is EventType.PUT:
                self._data[event.key] = KeyValue(
                    key=event.key,
                    value=event.value or b"",
                    create_revision=previous.create_revision if previous else event.revision,
                    mod_revision=event.revision,
                    version=previous.version + 1 if previous else 1,
                    lease=event.lease,
                )
            else:
                self._data.pop(event.key, None)
            for prefix, listener in self._listeners:
                if event.key.startswith(prefix):
                    listener.apply(event, previous)
        self._advance(event.revision)

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
        while self._waiters and self._waiters[0][0] <= self.revision:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
