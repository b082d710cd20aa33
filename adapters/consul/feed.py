"""The Consul feeds: blocking queries on KV, services and checks, diffed into watch events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

import consul
from consul.callback import CB

from adapters.base import CATALOG_PREFIX, HEALTH_PREFIX, EventType, KeyValue, WatchEvent
from adapters.consul.catalog import META_MANAGED, STATUS_MAP, aggregate_health, record_from_service
from adapters.consul.client import INTERNAL_DIR, ConsulClient
from adapters.consul.sessions import parse_lease_record, record_lease
from shared.backoff import Backoff
from shared.errors import BackendUnavailable, HubError, RevisionCompacted
from shared.timestamps import iso_utc

log = logging.getLogger("central_hub.consul")


# Retry delays of the feeds, in seconds. Jittered (shared.backoff), so the replicas that
# lost the same agent do not come back in lock-step.
FEED_RETRY_BASE = 0.2
"""First retry of a failed blocking query; the step doubles per failure up to the cap."""
FEED_RETRY_CAP = 5.0
REFUSED_RETRY = 5.0
"""Retry of a query Consul refused (e.g. the ACL token): retrying fast would not cure it."""
REFRESH_RETRY = 1.0
"""Retry of a failed catalog refresh."""


class ConsulFeed(ConsulClient):
    """The feeds that keep the backend's view of Consul current, and :meth:`watch`."""

    async def _kv_feed(self) -> None:
        """Follow the KV prefix with blocking queries and journal the differences."""
        backoff = Backoff(FEED_RETRY_BASE, FEED_RETRY_CAP)
        refused_backoff = Backoff(REFUSED_RETRY, REFUSED_RETRY)
        query_index = self._kv_index
        while not self._closed:
            try:
                index, items = await self._run(
                    self._kv_list, self.kv_prefix, query_index or None, feed=True
                )
            except BackendUnavailable as exc:
                if self._closed:
                    return
                self._journal.errors["kv"] = exc
                self._journal.notify()
                await asyncio.sleep(backoff.next())
                continue
            except HubError as exc:  # e.g. permission denied: report, retry slowly
                self._journal.errors["kv"] = exc
                self._journal.notify()
                await asyncio.sleep(refused_backoff.next())
                continue
            backoff.reset()
            self._journal.errors.pop("kv", None)
            # Consul's documented rules for blocking loops: an index that goes backwards
            # resets the query to 0; an index must be at least 1 to block.
            query_index = 0 if index < query_index else max(index, 1)
            new_state, leases = split_internal(items)
            live_leases = set(leases)
            if self._live_leases - live_leases:
                self._catalog_dirty.set()  # a lease ended: its instances go (see below)
            self._live_leases = live_leases
            for lease_id, (session, ttl, deadline) in leases.items():
                known = self._lease_deadlines.get(lease_id)
                if known is None or known[2] < deadline:
                    self._lease_deadlines[lease_id] = (session, ttl, deadline)
            for lease_id in set(self._lease_deadlines) - live_leases:
                # Gone from Consul; keep only leases granted here and not yet seen.
                if self._lease_deadlines[lease_id][2] < time.time():
                    del self._lease_deadlines[lease_id]
            reached = max(index, self._kv_index)
            events = _diff(self._kv_state, new_state, reached, self._deleted)
            self._kv_state = new_state
            self._kv_index = reached
            self._journal.append(events, reached)

    async def _catalog_trigger(self, which: str) -> None:
        """Block on the services list or all checks; mark the catalog dirty on change."""
        index = 0
        backoff = Backoff(FEED_RETRY_BASE, FEED_RETRY_CAP)
        path = "/v1/catalog/services" if which == "services" else "/v1/health/state/any"

        def block(c: consul.Consul) -> int:
            params = [*self._params(), ("index", index), ("wait", self.blocking_wait)]
            raw_index, _ = c.http.get(
                CB.json(index=True), path, params=params, headers=c.prepare_headers()
            )
            return int(raw_index)

        while not self._closed:
            try:
                new_index = await self._run(self._call, block, feed=True)
            except HubError:
                if self._closed:
                    return
                await asyncio.sleep(backoff.next())
                self._catalog_dirty.set()
                continue
            backoff.reset()
            if new_index != index:
                index = new_index if new_index > 0 else 1
                self._catalog_dirty.set()

    async def _catalog_refresher(self) -> None:
        """Rebuild the catalog snapshot whenever a trigger marks it dirty."""
        backoff = Backoff(REFRESH_RETRY, REFRESH_RETRY)
        while not self._closed:
            await self._catalog_dirty.wait()
            self._catalog_dirty.clear()
            if self._closed:
                return
            try:
                await self._refresh_catalog(initial=False)
            except HubError as exc:
                self._journal.errors["catalog"] = exc
                self._journal.notify()
                await asyncio.sleep(backoff.next())
                self._catalog_dirty.set()

    async def _refresh_catalog(self, *, initial: bool) -> None:
        index, entries = await self._run(self._catalog_snapshot)
        new_state: dict[str, KeyValue] = {}
        health_seen: dict[str, tuple[str, str]] = {}
        for key, (rev, value, fingerprint) in entries.items():
            if key.startswith(HEALTH_PREFIX):
                previous = self._catalog_state.get(key)
                seen = self._health_seen.get(key)
                if previous is not None and seen == fingerprint:
                    # Same status and output: keep the old record (and its last_check).
                    new_state[key] = previous
                    health_seen[key] = fingerprint
                    continue
                health_seen[key] = fingerprint
            old = self._catalog_state.get(key)
            new_state[key] = KeyValue(
                key=key,
                value=value,
                create_revision=old.create_revision if old else rev,
                mod_revision=rev,
                version=(old.version + 1) if old else 1,
                lease=record_lease(value) if key.startswith(CATALOG_PREFIX) else None,
            )
        self._journal.errors.pop("catalog", None)
        reached = max(index, self._catalog_index)
        events = [] if initial else _diff(self._catalog_state, new_state, reached, self._deleted)
        self._catalog_state = new_state
        self._health_seen = health_seen
        self._catalog_index = reached
        if initial:
            self._journal.head = max(self._journal.head, reached)
        else:
            self._journal.append(events, reached)
        await self._expire_leased_instances()

    def _catalog_snapshot(self) -> tuple[int, dict[str, tuple[int, bytes, tuple[str, str]]]]:
        """Every service instance and its health as (revision, JSON value, fingerprint)."""

        def read(c: consul.Consul) -> tuple[int, dict[str, tuple[int, bytes, tuple[str, str]]]]:
            index, services = c.catalog.services(dc=self.datacenter)
            top = int(index)
            out: dict[str, tuple[int, bytes, tuple[str, str]]] = {}
            for name in sorted(services or {}):
                if name in self.ignored_services:
                    continue
                svc_index, nodes = c.health.service(name, dc=self.datacenter)
                top = max(top, int(svc_index))
                ids = [str(n["Service"]["ID"]) for n in nodes or []]
                for node in nodes or []:
                    svc = node["Service"]
                    instance_id = str(svc["ID"])
                    if (
                        ids.count(instance_id) > 1
                        and (svc.get("Meta") or {}).get(META_MANAGED) != "true"
                    ):
                        # Native services often reuse one ID on every node.
                        instance_id = f"{instance_id}@{node['Node']['Node']}"
                    record = record_from_service(
                        svc, node_address=str(node["Node"].get("Address") or "")
                    )
                    record["instance_id"] = instance_id
                    value = json.dumps(record, sort_keys=True).encode()
                    out[f"{CATALOG_PREFIX}{name}/{instance_id}"] = (
                        int(svc["ModifyIndex"]),
                        value,
                        ("", ""),
                    )
                    status, output, check_rev = aggregate_health(node.get("Checks") or [])
                    health = {
                        "status": STATUS_MAP[status],
                        "latency": None,
                        "last_check": iso_utc(timespec="auto"),
                        "output": output,
                    }
                    out[f"{HEALTH_PREFIX}{name}/{instance_id}"] = (
                        max(check_rev, int(svc["ModifyIndex"])),
                        json.dumps(health, sort_keys=True).encode(),
                        (status, output),
                    )
            return top, out

        return self._call(read)

    async def _expire_leased_instances(self) -> None:
        """Deregister this agent's instances whose hub lease has ended.

        Consul cannot bind a service to a session, so the lease id travels in the
        service's ``hub-lease`` Meta and the lease's record under ``.consul/leases/``
        vanishes with its session; an instance whose lease record is gone is removed.
        """
        live = self._live_leases
        for lease in set(self._lease_sessions) - live:
            del self._lease_sessions[lease]
        ended = [
            key
            for key, kv in self._catalog_state.items()
            if key.startswith(CATALOG_PREFIX)
            and kv.lease is not None
            and kv.lease not in live
            # The lease was granted before the registration, so a KV answer at least as
            # new as the registration that lacks its record proves it has ended.
            and self._kv_index >= kv.mod_revision
        ]
        for key in ended:
            service, _, instance_id = key[len(CATALOG_PREFIX) :].partition("/")

            def deregister(c: consul.Consul, instance: str = instance_id) -> None:
                # 404: registered through another agent, which does its own clean-up.
                c.http.put(
                    lambda response: response,
                    f"/v1/agent/service/deregister/{instance}",
                    headers=c.prepare_headers(),
                )

            with contextlib.suppress(HubError):
                await self._run(self._call, deregister)
                log.info("instance %s/%s deregistered: its lease ended", service, instance_id)

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        journal = self._journal
        if start_revision <= journal.floor:
            raise RevisionCompacted(
                f"revision {start_revision} is older than this Consul backend's watch "
                f"history (oldest held: {journal.floor + 1}); resync with range()",
                details={"compacted_revision": journal.floor},
            )
        position = journal.dropped
        progress = start_revision - 1
        while True:
            if journal is not self._journal or self._closed:
                raise BackendUnavailable("the Consul backend was closed")
            if position < journal.dropped:
                raise RevisionCompacted(
                    "the watcher fell behind the backend's watch history; resync",
                    details={"compacted_revision": journal.floor},
                )
            changed = journal.changes.current()
            pending = journal.events[position - journal.dropped :]
            position += len(pending)
            for event in pending:
                if event.revision >= start_revision and event.key.startswith(prefix):
                    yield event
                    progress = max(progress, event.revision)
            if journal.errors and not pending:
                raise next(iter(journal.errors.values()))
            if journal.head > progress:
                progress = journal.head
                yield WatchEvent(type=EventType.PROGRESS, key="", revision=progress)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.progress_interval):
                    await changed.wait()


def _diff(
    old: dict[str, KeyValue],
    new: dict[str, KeyValue],
    answer_index: int,
    deleted: dict[str, tuple[int, int]],
) -> list[WatchEvent]:
    """PUT/DELETE events turning ``old`` into ``new``, in revision order."""
    events: list[WatchEvent] = []
    for key, kv in new.items():
        before = old.get(key)
        if before is None or before.mod_revision != kv.mod_revision or before.value != kv.value:
            events.append(
                WatchEvent(
                    type=EventType.PUT,
                    key=key,
                    revision=kv.mod_revision,
                    value=kv.value,
                    lease=kv.lease,
                )
            )
    for key, before in old.items():
        if key not in new:
            deleted[key] = (before.mod_revision, answer_index)
            events.append(WatchEvent(type=EventType.DELETE, key=key, revision=answer_index))
    if len(deleted) > 100_000:
        deleted.clear()
    events.sort(key=lambda e: (e.revision, e.type is EventType.DELETE, e.key))
    return events


def split_internal(
    items: list[KeyValue],
) -> tuple[dict[str, KeyValue], dict[int, tuple[str, int, float]]]:
    """The hub's keys by name, and the live leases' (session, ttl, deadline) by id."""
    state: dict[str, KeyValue] = {}
    leases: dict[int, tuple[str, int, float]] = {}
    lease_dir = f"{INTERNAL_DIR}leases/"
    for kv in items:
        if kv.key.startswith(lease_dir):
            parsed = parse_lease_record(kv.value)
            with contextlib.suppress(ValueError):
                if parsed is not None:
                    leases[int(kv.key[len(lease_dir) :])] = parsed
        elif not kv.key.startswith(INTERNAL_DIR):
            state[kv.key] = kv
    return state, leases
