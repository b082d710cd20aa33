"""The Consul backend: its parts combined, opened and closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import consul

from adapters.base import (
    CATALOG_PREFIX,
    HEALTH_PREFIX,
    Capabilities,
    KeyValue,
    LoadReport,
    Snapshot,
)
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

    # -- backup and restore ----------------------------------------------------------

    snapshot_consistency: ClassVar[str] = (
        "KV: one recursive read in Consul's 'consistent' mode (the leader confirms "
        "quorum), at its X-Consul-Index; instances: this backend's latest catalog answer, "
        "read after it (not at the same index)"
    )

    async def snapshot(self) -> Snapshot:
        """The KV prefix in one ``?consistent`` recursive read, plus the catalog.

        Consul serves a recursive KV read from one state-store snapshot, so the KV part
        is exact as of the answer's ``X-Consul-Index`` (the revision reported). Services
        and their health come from the feed's latest catalog answer, which Consul cannot
        read in the same transaction as KV; they are at least as new as that index for
        writes made through this process.
        """

        def read(c: consul.Consul) -> tuple[int, list[KeyValue]]:
            raw_index, entries = c.kv.get(self.kv_prefix, recurse=True, consistency="consistent")
            return int(raw_index), [self._entry_to_kv(e) for e in entries or []]

        index, items = await self._run(self._call, read)
        merged = {kv.key: kv for kv in items if not self._is_internal(kv.key)}
        merged.update(self._catalog_state)
        return Snapshot(items=[merged[k] for k in sorted(merged)], revision=index)

    async def load(
        self, items: Sequence[KeyValue], *, replace: bool = False, keep_revisions: bool = True
    ) -> LoadReport:
        """Restore key by key; revisions are never kept (Consul assigns raft indexes,
        shared with everything else the cluster writes). Health keys are not written:
        Consul runs its own checks."""
        wanted = [kv for kv in items if not kv.key.startswith(HEALTH_PREFIX)]
        return await super().load(wanted, replace=replace, keep_revisions=False)

    async def _restore_present(self) -> list[KeyValue]:
        # The agent's catalog is shared with whatever else registers there: a restore
        # needs only this hub's KV prefix empty, and replaces only the hub's own services.
        items = (await self.range("")).items
        return [
            kv
            for kv in items
            if not kv.key.startswith(HEALTH_PREFIX)
            and (not kv.key.startswith(CATALOG_PREFIX) or _hub_managed(kv.value))
        ]


def _hub_managed(record: bytes) -> bool:
    """Whether a catalog record was registered through a hub (``hub-managed`` Meta)."""
    try:
        data = json.loads(record)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("source") != "consul"
