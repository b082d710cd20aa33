"""The Consul backend: its parts combined, opened and closed."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from adapters.base import Capabilities
from adapters.consul.catalog import ConsulCatalog
from adapters.consul.feed import ConsulFeed, split_internal
from adapters.consul.journal import Journal
from adapters.consul.kv import ConsulKV
from shared.errors import BackendUnavailable


class ConsulBackend(ConsulKV, ConsulCatalog, ConsulFeed):
    """Hub state in a Consul datacenter, reached through one agent's HTTP API."""

    name: ClassVar[str] = "consul"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_health_checks=True, native_catalog=True, multi_process=True
    )

    async def open(self) -> None:
        self._closed = False
        self._journal = Journal(maxlen=self._journal_size)
        self._catalog_dirty = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hub-consul")
        # One thread per blocking query, so a held query never delays a write.
        self._feed_executor = ThreadPoolExecutor(
            max_workers=3, thread_name_prefix="hub-consul-feed"
        )
        try:
            await self._run(self._call, lambda c: c.status.leader())
            kv_index, items = await self._run(self._kv_list, self.kv_prefix, None)
            self._kv_state, leases = split_internal(items)
            self._live_leases = set(leases)
            self._lease_deadlines = dict(leases)
            self._kv_index = kv_index
            await self._refresh_catalog(initial=True)
        except BaseException:
            await self.close()
            raise
        self._journal.floor = self._journal.head = max(self._kv_index, self._catalog_index)
        self._tasks = [
            asyncio.create_task(self._kv_feed(), name="consul-kv-feed"),
            asyncio.create_task(
                self._catalog_trigger("services"), name="consul-catalog-services-feed"
            ),
            asyncio.create_task(self._catalog_trigger("checks"), name="consul-health-feed"),
            asyncio.create_task(self._catalog_refresher(), name="consul-catalog-refresher"),
            asyncio.create_task(self._reap_leases(), name="consul-lease-reaper"),
        ]

    async def close(self) -> None:
        if self._closed and self._executor is None:
            return
        self._closed = True
        self._journal.errors["closed"] = BackendUnavailable("the Consul backend was closed")
        self._journal.notify()
        self._catalog_dirty.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        # Blocking queries still held by Consul return within blocking_wait; don't wait.
        for executor in (self._executor, self._feed_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._feed_executor = None
