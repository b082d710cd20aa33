"""The Consul backend: hub state in Consul's KV store, instances in Consul's catalog.

Talks to a Consul agent's HTTP API through py-consul (``import consul``), the maintained
successor of python-consul2 (see ``docs/consul.md`` for why).

Mapping
-------
* **KV**: hub key ``k`` is Consul key ``<kv_prefix>k`` (default ``hub/``). Writes are
  ``/v1/txn`` transactions guarded by ``check-index`` / ``check-not-exists`` on the key's
  ``ModifyIndex``, so ``if_revision`` compare-and-set is Consul's own CAS. A key's
  ``mod_revision`` is its ``ModifyIndex``, ``create_revision`` its ``CreateIndex``, and
  ``version`` is kept in the entry's opaque ``Flags`` (Consul has no per-key version).
* **Leases** are Consul sessions (``Behavior=delete``, ``LockDelay=0s``). A key put with a
  lease is *acquired* by the session (txn ``lock``), so Consul deletes it when the session
  is destroyed or expires. Consul's session TTL is at least 10s and Consul may take twice
  that to expire one, so the hub enforces the lease's own TTL: the lease record holds a
  deadline that each keep-alive moves, and every backend instance destroys sessions past
  their deadline (Consul's TTL, ``max(ttl, 10s)``, remains the backstop when no hub runs).
  Lease ids are 60-bit integers derived from the session UUID (the hub serialises them
  with orjson, which only takes 64-bit integers); the session behind each id, the TTL and
  the deadline are kept in ``<kv_prefix>.consul/leases/<id>``, itself held by the
  session, so it vanishes with it.
* **Catalog**: :meth:`ConsulBackend.put_instance` registers an agent service (ID = instance
  id, ``Tags``, ``Meta`` carrying the hub's fields, ``Weights``, the instance's check as a
  Consul HTTP/TCP/TTL check); Consul runs the checks. Every service in the catalog, whether
  the hub registered it or not, appears as the virtual key ``catalog/<service>/<id>`` and
  its aggregated check status as ``health/<service>/<id>`` (passing / warning / critical
  become healthy / degraded / critical). Services registered directly with Consul get
  safe defaults (public, ``basic`` resource tier, not tenant-capable) unless their
  ``Meta`` opts in with the keys in :data:`NATIVE_META_KEYS`.
* **Watch**: a background *feed* runs blocking queries (``?index=&wait=``) on the KV prefix,
  ``/v1/catalog/services`` and ``/v1/health/state/any``, diffs consecutive answers into
  PUT/DELETE events and appends them to an in-memory journal that every
  :meth:`ConsulBackend.watch` reads from.

Where the backend contract bends (documented in ``docs/consul.md`` too)
----------------------------------------------------------------------
* Revisions are Consul raft indexes. They are comparable and increase with every change,
  but several keys written in one transaction share one index, and a DELETE's revision is
  the index of the first feed answer that no longer holds the key (Consul keeps no delete
  history; for a prefix query that index is the key's tombstone index).
* Consul keeps no change history, so a watch can only replay what this process's feed has
  seen since :meth:`ConsulBackend.open` (up to ``journal_size`` events). Older start
  revisions raise :class:`~shared.errors.RevisionCompacted` and the caller resyncs with
  :meth:`ConsulBackend.range`, as the contract prescribes. :meth:`ConsulBackend.compact`
  trims that journal.
* Changes made by *other* processes between two feed answers are coalesced (a key written
  twice shows one PUT with the final value; written then deleted shows nothing). Writes
  made through this backend are not: each write returns only after the feed has seen it.
* Events from the KV feed and the catalog feed are each in revision order; between the two
  they are in the order this process learned of them.
* Lease expiry is enforced by the hub's reapers (every ``reap_interval``, after a
  ``reap_grace`` for keep-alives made through other replicas), on wall-clock deadlines:
  replicas' clocks should agree to well under a second. A keep-alive costs two requests
  (session renew, lease record write).
* ``get``/``range`` of ``catalog/`` and ``health/`` keys answer from the feed's latest
  catalog snapshot, not a fresh read.

Leader election
---------------
:class:`ConsulLeaderElection` runs hub work on one replica at a time::

    election = ConsulLeaderElection(backend, "health-prober", holder="hub-1", ttl=15)
    if await election.try_acquire():       # session + KV acquire on .consul/leader/<name>
        ...                                # do the work; call renew() every ttl/2 seconds
        if not await election.renew():    # False: leadership was lost, stop the work
            ...
    await election.release()
    await election.leader()                # holder name of the current leader, or None
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import consul
import requests
from consul.callback import CB

from adapters.base import (
    CATALOG_PREFIX,
    Backend,
    Capabilities,
    EventType,
    KeyValue,
    Lease,
    LoadReport,
    Put,
    Snapshot,
    WatchEvent,
    check_puts,
)
from shared.errors import (
    BackendPermissionDenied,
    BackendTimeout,
    BackendUnavailable,
    Conflict,
    HubError,
    InvalidRequest,
    LeaseNotFound,
    NoQuorum,
    RevisionCompacted,
    RevisionConflict,
)

log = logging.getLogger("central_hub.consul")

T = TypeVar("T")

HEALTH_PREFIX = "health/"
INTERNAL_DIR = ".consul/"
"""Reserved subtree of the KV prefix for the backend's own keys; never shown to the hub."""

MIN_SESSION_TTL = 10
MAX_SESSION_TTL = 86_400

STATUS_MAP = {"passing": "healthy", "warning": "degraded", "critical": "critical"}
_STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 2}

# Meta keys the hub writes on its own registrations. A service registered directly with
# Consul may set the starred ones to opt in to hub semantics (see docs/consul.md).
META_MANAGED = "hub-managed"
NATIVE_META_KEYS = {
    "hub-subscription-requirements": "* comma-separated tiers, e.g. 'pro,enterprise'; "
    "absent or empty: public",
    "hub-resource-tier": "* basic | premium | enterprise (default basic)",
    "hub-tenant-capable": "* 'true' if the service accepts tenant context headers",
    "hub-protocol": "* http | https | grpc | grpcs | tcp | ws | wss (default http)",
    "hub-health-endpoint": "* path of the HTTP health endpoint (default /health)",
    "hub-version": "* version string (falls back to Meta 'version')",
}
_STRING_FIELDS = {
    "protocol": "hub-protocol",
    "health_endpoint": "hub-health-endpoint",
    "resource_tier": "hub-resource-tier",
    "version": "hub-version",
    "registered_at": "hub-registered-at",
}
_JSON_FIELDS = {"ttl": "hub-ttl", "load": "hub-load", "lease": "hub-lease", "check": "hub-check"}
_NATIVE_FIELDS = {"instance_id", "service_name", "host", "port", "weight", "tags", "meta"}
_KNOWN_FIELDS = (
    _NATIVE_FIELDS
    | set(_STRING_FIELDS)
    | set(_JSON_FIELDS)
    | {"subscription_requirements", "tenant_capable"}
)
_MAX_META_VALUE = 512


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _lease_id(session_id: str) -> int:
    """The hub's lease id for a Consul session: 60 bits of its UUID (fits orjson's int64)."""
    return int(uuid.UUID(session_id).hex[:15], 16)


def _seconds(duration: Any) -> int:
    """Whole seconds of a Consul duration string such as ``"30s"`` or ``"1m0s"``."""
    text = str(duration or "0s")
    total = 0.0
    number = ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = text[i : i + 2] if text[i : i + 2] in ("ms", "us", "ns") else ch
        total += float(number or 0) * units.get(unit, 1.0)
        number = ""
        i += len(unit)
    if number:
        total += float(number)
    return round(total)


@dataclass
class _Journal:
    """Events the feeds have seen since open, oldest first, for every watcher to read."""

    maxlen: int
    events: list[WatchEvent] = field(default_factory=list)
    dropped: int = 0
    """How many events were trimmed from the front (absolute position of events[0])."""
    floor: int = 0
    """Every change with a revision above this is held (as far as the feeds saw it)."""
    head: int = 0
    """The highest revision the feeds have reached."""
    errors: dict[str, HubError] = field(default_factory=dict)
    """The current failure of each feed ("kv", "catalog"); watchers raise the first."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, batch: Iterable[WatchEvent], reached: int) -> None:
        self.events.extend(batch)
        self.head = max(self.head, reached)
        overflow = len(self.events) - self.maxlen
        if overflow > 0:
            self.floor = max(self.floor, max(e.revision for e in self.events[:overflow]))
            del self.events[:overflow]
            self.dropped += overflow
        self.notify()

    def trim_below(self, revision: int) -> None:
        keep = [e for e in self.events if e.revision >= revision]
        self.dropped += len(self.events) - len(keep)
        self.events = keep
        self.floor = max(self.floor, revision - 1)

    def notify(self) -> None:
        # Swap before setting so every waiter that captured the old event wakes once.
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class ConsulBackend(Backend):
    """Hub state in a Consul datacenter, reached through one agent's HTTP API."""

    name: ClassVar[str] = "consul"
    capabilities: ClassVar[Capabilities] = Capabilities(
        native_health_checks=True, native_catalog=True, multi_process=True
    )

    def __init__(
        self,
        address: str = "http://127.0.0.1:8500",
        *,
        token: str | None = None,
        datacenter: str | None = None,
        kv_prefix: str = "hub/",
        blocking_wait: str = "5s",
        request_timeout: float = 10.0,
        write_visibility_timeout: float = 10.0,
        journal_size: int = 100_000,
        progress_interval: float = 1.0,
        reap_interval: float = 0.25,
        reap_grace: float = 0.5,
        ignored_services: Iterable[str] = ("consul",),
        verify: bool | str = True,
    ) -> None:
        if "//" not in address:
            address = "http://" + address
        parts = urlsplit(address)
        if not parts.hostname:
            raise InvalidRequest(f"invalid Consul address {address!r}")
        if not kv_prefix or kv_prefix.startswith("/") or not kv_prefix.endswith("/"):
            raise InvalidRequest("kv_prefix must be non-empty, relative and end with '/'")
        self.address = address
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 8500)
        self.token = token
        self.datacenter = datacenter
        self.kv_prefix = kv_prefix
        self.blocking_wait = blocking_wait
        self.request_timeout = request_timeout
        self.write_visibility_timeout = write_visibility_timeout
        self.progress_interval = progress_interval
        self.reap_interval = reap_interval
        self.reap_grace = reap_grace
        self.ignored_services = frozenset(ignored_services)
        self.verify = verify
        self._journal_size = journal_size
        self._local = threading.local()
        self._executor: ThreadPoolExecutor | None = None
        self._feed_executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = True
        self._journal = _Journal(maxlen=journal_size)
        # What the feeds last saw: hub key -> KeyValue, and the index of that answer.
        self._kv_state: dict[str, KeyValue] = {}
        self._kv_index = 0
        self._catalog_state: dict[str, KeyValue] = {}
        self._catalog_index = 0
        self._health_seen: dict[str, tuple[str, str]] = {}
        # (previous mod_revision, DELETE revision) of keys the feeds saw vanish.
        self._deleted: dict[str, tuple[int, int]] = {}
        self._catalog_dirty = asyncio.Event()
        self._lease_sessions: dict[int, str] = {}
        self._live_leases: set[int] = set()
        # lease id -> (session, ttl, deadline as epoch seconds), from the feed and our own
        # keep-alives; the reaper ends sessions past their deadline.
        self._lease_deadlines: dict[int, tuple[str, int, float]] = {}

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        self._closed = False
        self._journal = _Journal(maxlen=self._journal_size)
        self._catalog_dirty = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hub-consul")
        # One thread per blocking query, so a held query never delays a write.
        self._feed_executor = ThreadPoolExecutor(
            max_workers=3, thread_name_prefix="hub-consul-feed"
        )
        try:
            await self._run(self._call, lambda c: c.status.leader())
            kv_index, items = await self._run(self._kv_list, self.kv_prefix, None)
            self._kv_state, leases = _split_internal(items)
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

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": f"{self.scheme}://{self.host}:{self.port}",
            "datacenter": self.datacenter,
            "kv_prefix": self.kv_prefix,
            "acl_token": self.token is not None,
        }

    # -- plumbing -------------------------------------------------------------------

    def _client(self) -> consul.Consul:
        """This thread's py-consul client (requests sessions are not shared across threads)."""
        client: consul.Consul | None = getattr(self._local, "client", None)
        if client is None:
            client = consul.Consul(
                host=self.host,
                port=self.port,
                scheme=self.scheme,
                token=self.token,
                dc=self.datacenter,
                verify=self.verify,
                connections_timeout=self.request_timeout,
            )
            # py-consul lets CONSUL_HTTP_TOKEN override the token it was given; the hub's
            # setting wins (None means: no token at all).
            client.token = self.token
            self._local.client = client
        return client

    def _call(self, fn: Callable[[consul.Consul], T]) -> T:
        try:
            return fn(self._client())
        except HubError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    async def _run(self, fn: Callable[..., T], *args: Any, feed: bool = False) -> T:
        executor = self._feed_executor if feed else self._executor
        if executor is None or self._closed:
            raise BackendUnavailable("the Consul backend is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except RuntimeError as exc:  # executor shut down by close()
            raise BackendUnavailable("the Consul backend was closed") from exc

    def _params(self) -> list[tuple[str, Any]]:
        return [("dc", self.datacenter)] if self.datacenter else []

    def _full(self, key: str) -> str:
        return self.kv_prefix + key

    @staticmethod
    def _is_internal(key: str) -> bool:
        return key.startswith(INTERNAL_DIR)

    @staticmethod
    def _is_virtual(key: str) -> bool:
        return key.startswith((CATALOG_PREFIX, HEALTH_PREFIX))

    def _entry_to_kv(self, entry: dict[str, Any]) -> KeyValue:
        value = entry.get("Value")
        session = entry.get("Session")
        return KeyValue(
            key=str(entry["Key"])[len(self.kv_prefix) :],
            value=bytes(value) if value is not None else b"",
            create_revision=int(entry["CreateIndex"]),
            mod_revision=int(entry["ModifyIndex"]),
            version=max(1, int(entry.get("Flags") or 0)),
            lease=_lease_id(session) if session else None,
        )

    def _kv_list(self, prefix: str, index: int | None) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` (blocking when ``index`` is given) and the answer's index.

        Includes the backend's own keys under :data:`INTERNAL_DIR`; callers filter them.
        """

        def list_keys(c: consul.Consul) -> tuple[int, list[KeyValue]]:
            raw_index, entries = c.kv.get(
                prefix, recurse=True, index=index, wait=self.blocking_wait if index else None
            )
            return int(raw_index), [self._entry_to_kv(e) for e in entries or []]

        return self._call(list_keys)

    def _txn(self, ops: list[dict[str, Any]]) -> tuple[bool, list[dict[str, Any]], list[Any]]:
        """Run one transaction; (committed, results, errors). 409 = rolled back."""

        def call(c: consul.Consul) -> tuple[bool, list[dict[str, Any]], list[Any]]:
            # py-consul's Txn.put sends neither the ACL token nor dc: use its HTTP client.
            response = c.http.put(
                lambda r: r,
                "/v1/txn",
                params=self._params(),
                data=json.dumps(ops),
                headers=c.prepare_headers(),
            )
            if response.code in (200, 409):
                body = json.loads(response.body or "{}")
                return (
                    response.code == 200,
                    body.get("Results") or [],
                    body.get("Errors") or [],
                )
            CB._status(response)
            raise consul.ConsulException(f"{response.code} {response.body}")

        return self._call(call)

    async def _wait_for(self, predicate: Callable[[], bool]) -> bool:
        """Wait until a feed has seen what ``predicate`` checks; False after the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.write_visibility_timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closed:
                return False
            changed = self._journal.changed
            with contextlib.suppress(TimeoutError):  # not wait_for: 3.11 can lose a cancel
                async with asyncio.timeout(min(remaining, 0.5)):
                    await changed.wait()
        return True

    # -- KV -------------------------------------------------------------------------

    async def current_revision(self) -> int:
        def index(c: consul.Consul) -> int:
            raw_index, _ = c.kv.get(self.kv_prefix, recurse=True, keys=True)
            return int(raw_index)

        kv_index = await self._run(self._call, index)
        # Consul's prefix index can drop when tombstones are reaped; never go backwards.
        return max(kv_index, self._catalog_index, self._journal.head)

    async def get(self, key: str) -> KeyValue | None:
        if self._is_virtual(key) and key in self._catalog_state:
            return self._catalog_state[key]
        if self._is_internal(key):
            return None

        def get_one(c: consul.Consul) -> KeyValue | None:
            _, entry = c.kv.get(self._full(key))
            return self._entry_to_kv(entry) if entry else None

        return await self._run(self._call, get_one)

    async def range(self, prefix: str) -> Snapshot:
        # The revision is taken first: items may be newer than it (a watch from it replays
        # them, harmlessly), never older (which would lose changes).
        revision = await self.current_revision()
        _, items = await self._run(self._kv_list, self._full(prefix), None)
        merged = {kv.key: kv for kv in items if not self._is_internal(kv.key)}
        for key, kv in self._catalog_state.items():
            if key.startswith(prefix):
                merged[key] = kv
        return Snapshot(items=[merged[k] for k in sorted(merged)], revision=revision)

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        lease: int | None = None,
        if_revision: int | None = None,
    ) -> int:
        if key.startswith(CATALOG_PREFIX):
            # Catalog keys are Consul services (e.g. `central-hub migrate` copying state).
            service, _, instance_id = key[len(CATALOG_PREFIX) :].partition("/")
            return await self.put_instance(service, instance_id, value, lease=lease)
        if self._is_internal(key):
            raise InvalidRequest(f"keys under {INTERNAL_DIR!r} are reserved by the backend")
        session = await self._session_of(lease) if lease is not None else None
        rev = await self._run(self._put_sync, key, bytes(value), session, lease, if_revision)
        await self._wait_for(lambda: self._kv_index >= rev)
        return rev

    def _put_sync(
        self,
        key: str,
        value: bytes,
        session: str | None,
        lease: int | None,
        if_revision: int | None,
    ) -> int:
        full = self._full(key)
        encoded = base64.b64encode(value).decode()
        for _ in range(32):  # bounded retries when another writer races an unconditional put
            _, entry = self._call(lambda c: c.kv.get(full))
            actual = int(entry["ModifyIndex"]) if entry else 0
            _check_revision(key, actual, if_revision)
            version = max(1, int(entry.get("Flags") or 0)) + 1 if entry else 1
            ops: list[dict[str, Any]] = [
                {"KV": {"Verb": "check-index", "Key": full, "Index": actual}}
                if entry
                else {"KV": {"Verb": "check-not-exists", "Key": full}}
            ]
            held = entry.get("Session") if entry else None
            if held and held != session:
                # Detach the key from its old session first, so revoking that lease later
                # does not delete the new value.
                ops.append(
                    {
                        "KV": {
                            "Verb": "unlock",
                            "Key": full,
                            "Value": encoded,
                            "Flags": version,
                            "Session": held,
                        }
                    }
                )
            write: dict[str, Any] = {"Key": full, "Value": encoded, "Flags": version}
            if session:
                write.update(Verb="lock", Session=session)
            else:
                write["Verb"] = "set"
            ops.append({"KV": write})
            committed, results, errors = self._txn(ops)
            if committed:
                return max(
                    int(r["KV"]["ModifyIndex"])
                    for r in results
                    if r.get("KV") and r["KV"].get("Key") == full
                )
            failed = {int(e.get("OpIndex", -1)) for e in errors}
            if 0 in failed:
                if if_revision is not None:
                    raise RevisionConflict(
                        f"key {key!r} changed concurrently",
                        details={"key": key, "expected_revision": if_revision},
                    )
                continue
            if session and len(ops) - 1 in failed:
                raise LeaseNotFound(f"lease {lease} does not exist or has expired")
            raise BackendUnavailable(f"Consul rolled back the write of {key!r}: {errors}")
        raise BackendTimeout(f"key {key!r} kept changing; the write gave up")

    async def put_all(self, puts: Sequence[Put]) -> int:
        check_puts(puts)
        if any(self._is_internal(p.key) for p in puts):
            raise InvalidRequest(f"keys under {INTERNAL_DIR!r} are reserved by the backend")
        rev = await self._run(self._put_all_sync, list(puts))
        await self._wait_for(lambda: self._kv_index >= rev)
        return rev

    def _put_all_sync(self, puts: list[Put]) -> int:
        for _ in range(32):  # bounded retries when another writer races an unconditional put
            ops: list[dict[str, Any]] = []
            for put in puts:
                full = self._full(put.key)
                _, entry = self._call(partial(_kv_get, full))
                actual = int(entry["ModifyIndex"]) if entry else 0
                _check_revision(put.key, actual, put.if_revision)
                version = max(1, int(entry.get("Flags") or 0)) + 1 if entry else 1
                ops.append(
                    {"KV": {"Verb": "check-index", "Key": full, "Index": actual}}
                    if entry
                    else {"KV": {"Verb": "check-not-exists", "Key": full}}
                )
                value = base64.b64encode(bytes(put.value)).decode()
                ops.append({"KV": {"Verb": "set", "Key": full, "Value": value, "Flags": version}})
            committed, results, errors = self._txn(ops)
            if committed:
                return max(int(r["KV"]["ModifyIndex"]) for r in results if r.get("KV"))
            failed = {int(e.get("OpIndex", -1)) for e in errors}
            if not failed or any(i < 0 or i % 2 for i in failed):  # not only the checks
                raise BackendUnavailable(f"Consul rolled back the transaction: {errors}")
            if any(p.if_revision is not None for p in puts):
                raise RevisionConflict(
                    "a key of the transaction changed concurrently",
                    details={"keys": [p.key for p in puts]},
                )
            log.debug("put_all raced another writer: %s", errors)
        raise BackendTimeout("the keys kept changing; the transaction gave up")

    async def delete(self, key: str, *, if_revision: int | None = None) -> int | None:
        if if_revision == 0:
            raise InvalidRequest("a delete cannot require the key to be absent")
        if key.startswith(CATALOG_PREFIX):
            service, _, instance_id = key[len(CATALOG_PREFIX) :].partition("/")
            return await self.delete_instance(service, instance_id)
        if self._is_internal(key):
            return None
        old = await self._run(self._delete_sync, key, if_revision)
        if old is None:
            return None
        return await self._deleted_revision(key, old, lambda: self._kv_state)

    def _delete_sync(self, key: str, if_revision: int | None) -> int | None:
        """Delete ``key``; return the ModifyIndex it had, or None if it was absent."""
        full = self._full(key)
        for _ in range(32):
            _, entry = self._call(lambda c: c.kv.get(full))
            actual = int(entry["ModifyIndex"]) if entry else 0
            _check_revision(key, actual, if_revision)
            if entry is None:
                return None
            committed, _, errors = self._txn(
                [{"KV": {"Verb": "delete-cas", "Key": full, "Index": actual}}]
            )
            if committed:
                return actual
            if if_revision is not None:
                raise RevisionConflict(
                    f"key {key!r} changed concurrently",
                    details={"key": key, "expected_revision": if_revision},
                )
            log.debug("delete of %s raced another writer: %s", key, errors)
        raise BackendTimeout(f"key {key!r} kept changing; the delete gave up")

    async def _deleted_revision(
        self, key: str, old_mod: int, state: Callable[[], dict[str, KeyValue]]
    ) -> int:
        """The revision of a delete, as the feed reported it (so events and returns agree)."""

        def gone() -> bool:
            current = state().get(key)
            return current is None or current.mod_revision != old_mod

        await self._wait_for(gone)
        seen = self._deleted.get(key)
        if seen is not None and seen[0] == old_mod:
            return seen[1]
        return max(self._kv_index, self._catalog_index)

    # -- leases ---------------------------------------------------------------------

    def _lease_key(self, lease_id: int) -> str:
        return self._full(f"{INTERNAL_DIR}leases/{lease_id}")

    async def grant_lease(self, ttl: int) -> Lease:
        if ttl < 1:
            raise InvalidRequest("a lease TTL must be at least 1 second")
        if ttl > MAX_SESSION_TTL:
            raise InvalidRequest(f"a lease TTL must be at most {MAX_SESSION_TTL} seconds")
        lease_id, session, deadline = await self._run(self._grant_sync, ttl)
        self._lease_sessions[lease_id] = session
        self._lease_deadlines[lease_id] = (session, ttl, deadline)
        return Lease(id=lease_id, ttl=ttl)

    def _grant_sync(self, ttl: int) -> tuple[int, str, float]:
        body = {
            "Name": "central-hub lease",
            # Consul's own expiry is the safety net for when no hub replica runs; it takes
            # 10s at least and may take twice the TTL, so the hub enforces `ttl` itself.
            "TTL": f"{min(max(ttl, MIN_SESSION_TTL), MAX_SESSION_TTL)}s",
            "Behavior": "delete",
            # Consul's default 15s lock delay would block re-binding a key for 15s after
            # its lease ends; the hub relies on revisions, not lock delay, for safety.
            "LockDelay": "0s",
        }

        def create(c: consul.Consul) -> str:
            session: str = c.http.put(
                CB.json(is_id=True),
                "/v1/session/create",
                params=self._params(),
                data=json.dumps(body),
                headers=c.prepare_headers(),
            )
            return session

        session = self._call(create)
        lease_id = _lease_id(session)
        deadline = time.time() + ttl
        if not self._write_lease_record(lease_id, session, ttl, deadline):
            raise BackendUnavailable(f"Consul refused to record lease {lease_id}")
        return lease_id, session, deadline

    def _write_lease_record(self, lease_id: int, session: str, ttl: int, deadline: float) -> bool:
        """Write the lease's record, held by its own session; False if the session is gone."""
        record = json.dumps({"session": session, "ttl": ttl, "deadline": deadline}).encode()
        committed, _, _ = self._txn(
            [
                {
                    "KV": {
                        "Verb": "lock",
                        "Key": self._lease_key(lease_id),
                        "Value": base64.b64encode(record).decode(),
                        "Session": session,
                    }
                }
            ]
        )
        return committed

    async def _lease_of(self, lease_id: int) -> tuple[str, int, float]:
        """(session, ttl, deadline) of a live lease; LeaseNotFound otherwise."""

        def lookup(c: consul.Consul) -> tuple[str, int, float] | None:
            _, entry = c.kv.get(self._lease_key(lease_id))
            value = entry.get("Value") if entry else None
            return _parse_lease_record(bytes(value)) if value else None

        found = await self._run(self._call, lookup)
        if found is None:
            self._lease_sessions.pop(lease_id, None)
            raise LeaseNotFound(f"lease {lease_id} does not exist or has expired")
        self._lease_sessions[lease_id] = found[0]
        return found

    async def _session_of(self, lease_id: int) -> str:
        session = self._lease_sessions.get(lease_id)
        if session is not None:
            return session
        return (await self._lease_of(lease_id))[0]

    async def keep_alive(self, lease_id: int) -> int:
        session, ttl, deadline = await self._lease_of(lease_id)
        if deadline <= time.time():
            # Past its deadline but not reaped yet: it has expired all the same.
            await self._end_session(session)
            raise LeaseNotFound(f"lease {lease_id} has expired")

        def renew(c: consul.Consul) -> bool:
            answer = c.http.put(
                CB.json(),  # 404 (the session is gone) reads as None
                f"/v1/session/renew/{session}",
                params=self._params(),
                headers=c.prepare_headers(),
            )
            return bool(answer)

        new_deadline = time.time() + ttl
        if not await self._run(self._call, renew) or not await self._run(
            self._write_lease_record, lease_id, session, ttl, new_deadline
        ):
            self._lease_sessions.pop(lease_id, None)
            raise LeaseNotFound(f"lease {lease_id} does not exist or has expired")
        self._lease_deadlines[lease_id] = (session, ttl, new_deadline)
        await self._pass_ttl_checks(lease_id)
        return ttl

    async def _pass_ttl_checks(self, lease_id: int) -> None:
        """Pass the Consul TTL check of every instance bound to ``lease_id``.

        On the other backends a heartbeat (this keep-alive) is what keeps a TTL-checked
        instance healthy; Consul turns a TTL check critical one TTL after its last pass, so
        the heartbeat must pass it too. Its check id is Consul's default for a service's
        single check, ``service:<id>``.
        """
        instance_ids = []
        for key, kv in self._catalog_state.items():
            if not key.startswith(CATALOG_PREFIX) or kv.lease != lease_id:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(kv.value)
                if (record.get("check") or {}).get("kind") == "ttl":
                    instance_ids.append(str(record["instance_id"]))
        for instance_id in instance_ids:

            def check_pass(c: consul.Consul, check_id: str = f"service:{instance_id}") -> None:
                # 404: registered through another agent, whose heartbeats pass it there.
                c.http.put(
                    lambda response: response,
                    f"/v1/agent/check/pass/{check_id}",
                    params=[("note", "central-hub heartbeat")],
                    headers=c.prepare_headers(),
                )

            with contextlib.suppress(HubError):
                await self._run(self._call, check_pass)

    async def revoke_lease(self, lease_id: int) -> None:
        try:
            session = await self._session_of(lease_id)
        except LeaseNotFound:
            return
        self._lease_sessions.pop(lease_id, None)
        self._lease_deadlines.pop(lease_id, None)
        await self._end_session(session)
        # Return once the feed has seen the session's keys go, like a local revoke would.
        await self._wait_for(
            lambda: not any(kv.lease == lease_id for kv in self._kv_state.values())
        )

    async def _end_session(self, session: str) -> None:
        await self._run(self._call, lambda c: c.session.destroy(session, dc=self.datacenter))

    async def _reap_leases(self) -> None:
        """End leases past their deadline (every replica does it; destroy is idempotent)."""
        while not self._closed:
            await asyncio.sleep(self.reap_interval)
            now = time.time()
            expired = [
                (lease_id, session)
                for lease_id, (session, _, deadline) in self._lease_deadlines.items()
                # The grace lets a keep-alive by another replica reach this one's feed.
                if deadline + self.reap_grace <= now
            ]
            for lease_id, session in expired:
                self._lease_deadlines.pop(lease_id, None)
                self._lease_sessions.pop(lease_id, None)
                with contextlib.suppress(HubError):
                    await self._end_session(session)

    async def compact(self, revision: int) -> None:
        """Forget the in-memory watch history before ``revision`` (Consul keeps none)."""
        self._journal.trim_below(revision)

    # -- catalog --------------------------------------------------------------------

    async def put_instance(
        self, service: str, instance_id: str, record: bytes, *, lease: int | None = None
    ) -> int:
        try:
            data = json.loads(record)
        except ValueError as exc:
            raise InvalidRequest(f"instance record is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidRequest("instance record must be a JSON object")
        if not service or not instance_id or "/" in service or "/" in instance_id:
            raise InvalidRequest("service and instance id must be non-empty, without '/'")
        if lease is not None:
            await self._session_of(lease)  # raises LeaseNotFound before registering
            data["lease"] = lease
        registration = registration_for(service, instance_id, data)
        expected = record_from_service(registration_as_catalog_entry(registration), node_address="")
        key = f"{CATALOG_PREFIX}{service}/{instance_id}"

        def register(c: consul.Consul) -> None:
            c.http.put(
                CB.boolean(),
                "/v1/agent/service/register",
                params=[("replace-existing-checks", "true")],
                data=json.dumps(registration),
                headers=c.prepare_headers(),
            )

        before = self._catalog_state.get(key)
        seen_before = before.mod_revision if before is not None else 0
        await self._run(self._call, register)
        self._catalog_dirty.set()

        def registered() -> bool:
            # Ours, or a newer registration of the same instance that superseded it
            # (concurrent re-registrations: the last writer wins, as on every backend).
            current = self._catalog_state.get(key)
            return current is not None and (
                _same_record(current.value, expected) or current.mod_revision > seen_before
            )

        if not await self._wait_for(registered):
            raise BackendTimeout(
                f"Consul accepted instance {instance_id!r} but its catalog did not show it "
                f"within {self.write_visibility_timeout}s (agent anti-entropy lagging?)"
            )
        return self._catalog_state[key].mod_revision

    async def delete_instance(self, service: str, instance_id: str) -> int | None:
        key = f"{CATALOG_PREFIX}{service}/{instance_id}"

        def local(c: consul.Consul) -> dict[str, Any] | None:
            found: dict[str, Any] | None = c.http.get(
                CB.json(),
                f"/v1/agent/service/{instance_id}",
                headers=c.prepare_headers(),
            )
            return found

        mine = await self._run(self._call, local)
        current = self._catalog_state.get(key)
        if mine is None or mine.get("Service") != service:
            if current is None:
                return None
            raise Conflict(
                f"instance {instance_id!r} is registered through another Consul agent; "
                "deregister it there",
                details={"service": service, "instance_id": instance_id},
            )

        def deregister(c: consul.Consul) -> None:
            c.http.put(
                CB.boolean(),
                f"/v1/agent/service/deregister/{instance_id}",
                headers=c.prepare_headers(),
            )

        await self._run(self._call, deregister)
        self._catalog_dirty.set()
        if current is None:
            # Registered on the agent but never seen in the catalog: wait for the removal
            # to be visible and report the catalog's index.
            return max(self._catalog_index, self._kv_index)
        return await self._deleted_revision(key, current.mod_revision, lambda: self._catalog_state)

    # -- feeds ----------------------------------------------------------------------

    async def _kv_feed(self) -> None:
        """Follow the KV prefix with blocking queries and journal the differences."""
        failures = 0
        query_index = self._kv_index
        while not self._closed:
            try:
                index, items = await self._run(
                    self._kv_list, self.kv_prefix, query_index or None, feed=True
                )
            except BackendUnavailable as exc:
                if self._closed:
                    return
                failures += 1
                self._journal.errors["kv"] = exc
                self._journal.notify()
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)))
                continue
            except HubError as exc:  # e.g. permission denied: report, retry slowly
                self._journal.errors["kv"] = exc
                self._journal.notify()
                await asyncio.sleep(5.0)
                continue
            failures = 0
            self._journal.errors.pop("kv", None)
            # Consul's documented rules for blocking loops: an index that goes backwards
            # resets the query to 0; an index must be at least 1 to block.
            query_index = 0 if index < query_index else max(index, 1)
            new_state, leases = _split_internal(items)
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
        failures = 0
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
                failures += 1
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)))
                self._catalog_dirty.set()
                continue
            failures = 0
            if new_index != index:
                index = new_index if new_index > 0 else 1
                self._catalog_dirty.set()

    async def _catalog_refresher(self) -> None:
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
                await asyncio.sleep(1.0)
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
                lease=_record_lease(value) if key.startswith(CATALOG_PREFIX) else None,
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
                    status, output, check_rev = _aggregate_health(node.get("Checks") or [])
                    health = {
                        "status": STATUS_MAP[status],
                        "latency": None,
                        "last_check": _now_iso(),
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

    # -- audit batches (beside the KV prefix, so the feed never reads them) ----------

    @property
    def audit_prefix(self) -> str:
        """Where audit batches live: ``hub/`` keeps them in ``hub.audit/``."""
        return self.kv_prefix[:-1] + ".audit/"

    async def _audit_put(self, name: str, lines: list[bytes]) -> None:
        value = base64.b64encode(b"\n".join(lines)).decode()
        op = {"KV": {"Verb": "set", "Key": self.audit_prefix + name, "Value": value}}
        committed, _, errors = await self._run(self._txn, [op])
        if not committed:
            raise BackendUnavailable(f"Consul refused an audit batch: {errors}")

    async def _audit_names(self) -> list[str]:
        def list_names(c: consul.Consul) -> list[str]:
            _, keys = c.kv.get(self.audit_prefix, keys=True)
            return [str(k)[len(self.audit_prefix) :] for k in keys or []]

        return await self._run(self._call, list_names)

    async def _audit_get(self, name: str) -> bytes | None:
        def get_one(c: consul.Consul) -> bytes | None:
            _, entry = c.kv.get(self.audit_prefix + name)
            return bytes(entry["Value"] or b"") if entry else None

        return await self._run(self._call, get_one)

    async def _audit_delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 64):  # Consul's limit of operations per txn
            ops = [
                {"KV": {"Verb": "delete", "Key": self.audit_prefix + name}}
                for name in names[start : start + 64]
            ]
            await self._run(self._txn, ops)

    # -- watch ----------------------------------------------------------------------

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
            changed = journal.changed
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

    # -- backup and restore (issue 14) --------------------------------------------------

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


# -- records ------------------------------------------------------------------------


def registration_for(service: str, instance_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The ``/v1/agent/service/register`` body for a hub instance record."""
    meta: dict[str, str] = {}
    for key, value in (record.get("meta") or {}).items():
        if str(key).startswith(("hub-", "consul-")):
            raise InvalidRequest(f"meta key {key!r} is reserved (hub-*/consul-*)")
        meta[str(key)] = str(value)
    meta[META_MANAGED] = "true"
    for name, meta_key in _STRING_FIELDS.items():
        if record.get(name) is not None:
            meta[meta_key] = str(record[name])
    for name, meta_key in _JSON_FIELDS.items():
        if record.get(name) is not None:
            meta[meta_key] = json.dumps(record[name], separators=(",", ":"), sort_keys=True)
    reqs = record.get("subscription_requirements")
    if reqs:
        meta["hub-subscription-requirements"] = ",".join(str(t) for t in reqs)
    meta["hub-tenant-capable"] = "true" if record.get("tenant_capable", True) else "false"
    extra = {k: v for k, v in record.items() if k not in _KNOWN_FIELDS}
    if extra:
        meta["hub-extra"] = json.dumps(extra, separators=(",", ":"), sort_keys=True)
    too_long = [k for k, v in meta.items() if len(v) > _MAX_META_VALUE or len(k) > 128]
    if too_long:
        raise InvalidRequest(f"Consul Meta values are limited to 512 characters: {too_long}")
    if len(meta) > 64:
        raise InvalidRequest("Consul allows at most 64 Meta keys per service")
    host = str(record.get("host") or "")
    port = int(record.get("port") or 0)
    body: dict[str, Any] = {
        "ID": instance_id,
        "Name": service,
        "Tags": [str(t) for t in record.get("tags") or []],
        "Address": host,
        "Port": port,
        "Meta": meta,
        # Consul requires Passing >= 1; Warning instances get the minimum share.
        "Weights": {"Passing": max(1, int(record.get("weight") or 1)), "Warning": 1},
    }
    check = _check_for(record, host, port)
    if check is not None:
        body["Check"] = check
    return body


def _duration(seconds: Any) -> str:
    """A Go duration string Consul parses (sub-second intervals included)."""
    return f"{float(seconds):g}s"


def _check_for(record: dict[str, Any], host: str, port: int) -> dict[str, Any] | None:
    spec = record.get("check")
    if not isinstance(spec, dict):
        return None
    kind = str(spec.get("kind") or "http")
    interval = _duration(spec.get("interval") or 10)
    # New Consul checks start critical; the hub counts an unchecked instance as healthy
    # until its first result, so the check starts passing as on the other backends.
    check: dict[str, Any] = {"Name": f"central-hub {kind} check", "Status": "passing"}
    if kind == "http":
        scheme = "https" if record.get("protocol") in ("https", "wss", "grpcs") else "http"
        shown = f"[{host}]" if ":" in host else host
        check.update(
            HTTP=f"{scheme}://{shown}:{port}{record.get('health_endpoint') or '/health'}",
            Method="GET",
            Interval=interval,
        )
    elif kind == "tcp":
        shown = f"[{host}]" if ":" in host else host
        check.update(TCP=f"{shown}:{port}", Interval=interval)
    elif kind == "ttl":
        check["TTL"] = _duration(record.get("ttl") or spec.get("interval") or 30)
    else:
        raise InvalidRequest(f"unknown check kind {kind!r} (http, tcp or ttl)")
    if kind != "ttl" and spec.get("timeout"):
        check["Timeout"] = _duration(spec["timeout"])
    if spec.get("failures_before_critical"):
        check["FailuresBeforeCritical"] = int(spec["failures_before_critical"])
    if spec.get("successes_before_passing"):
        check["SuccessBeforePassing"] = int(spec["successes_before_passing"])
    if spec.get("deregister_after"):
        # Consul's reaper runs about every 30 s and refuses less than one minute.
        check["DeregisterCriticalServiceAfter"] = _duration(max(60, spec["deregister_after"]))
    return check


def registration_as_catalog_entry(registration: dict[str, Any]) -> dict[str, Any]:
    """How a registration body reads back as a catalog ``Service`` object."""
    return {
        "ID": registration["ID"],
        "Service": registration["Name"],
        "Tags": registration.get("Tags") or [],
        "Address": registration.get("Address") or "",
        "Port": registration.get("Port") or 0,
        "Meta": registration.get("Meta") or {},
        "Weights": registration.get("Weights") or {"Passing": 1, "Warning": 1},
    }


def record_from_service(service: dict[str, Any], *, node_address: str) -> dict[str, Any]:
    """The hub's instance record for a catalog ``Service`` object (hub-made or native)."""
    meta: dict[str, str] = dict(service.get("Meta") or {})
    managed = meta.get(META_MANAGED) == "true"
    reqs_text = meta.get("hub-subscription-requirements", "")
    reqs = [t.strip() for t in reqs_text.split(",") if t.strip()] or None
    weights = service.get("Weights") or {}
    record: dict[str, Any] = {
        "instance_id": str(service.get("ID") or ""),
        "service_name": str(service.get("Service") or ""),
        "host": str(service.get("Address") or node_address),
        "port": int(service.get("Port") or 0),
        "protocol": meta.get("hub-protocol", "http"),
        "health_endpoint": meta.get("hub-health-endpoint", "/health"),
        # Native services never asked for tenant headers: safe default is "not capable".
        "tenant_capable": meta.get("hub-tenant-capable", "false") == "true",
        "subscription_requirements": reqs,
        "resource_tier": meta.get("hub-resource-tier", "basic"),
        "weight": int(weights.get("Passing") or 1),
        "version": meta.get("hub-version", meta.get("version")),
        "tags": list(service.get("Tags") or []),
        "meta": {k: v for k, v in meta.items() if not k.startswith("hub-")},
        "ttl": None,
        "registered_at": meta.get("hub-registered-at", ""),
    }
    for name, meta_key in _JSON_FIELDS.items():
        if meta_key in meta:
            with contextlib.suppress(ValueError):
                record[name] = json.loads(meta[meta_key])
    if "hub-extra" in meta:
        with contextlib.suppress(ValueError):
            extra = json.loads(meta["hub-extra"])
            if isinstance(extra, dict):
                record.update({k: v for k, v in extra.items() if k not in record})
    if not managed:
        record["source"] = "consul"
    return record


def _same_record(stored: bytes, expected: dict[str, Any]) -> bool:
    try:
        current = json.loads(stored)
    except ValueError:
        return False
    # The address Consul reports may be the node's when the registration gave none.
    compare = {k: v for k, v in expected.items() if k not in ("host", "instance_id")}
    return all(current.get(k) == v for k, v in compare.items())


def _record_lease(value: bytes) -> int | None:
    try:
        lease = json.loads(value).get("lease")
    except (ValueError, AttributeError):
        return None
    return int(lease) if isinstance(lease, int) else None


def _aggregate_health(checks: list[dict[str, Any]]) -> tuple[str, str, int]:
    """Worst status of an instance's node and service checks, their outputs, newest index."""
    if not checks:
        return "passing", "", 0
    worst = max(checks, key=lambda c: _STATUS_RANK.get(str(c.get("Status")), 2))
    status = str(worst.get("Status") or "critical")
    status = status if status in STATUS_MAP else "critical"
    output = "; ".join(
        f"{c.get('Name') or c.get('CheckID')}: {str(c.get('Output') or '').strip()}"
        for c in checks
        if str(c.get("Output") or "").strip()
    )
    newest = max(int(c.get("ModifyIndex") or 0) for c in checks)
    return status, output, newest


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


def _split_internal(
    items: list[KeyValue],
) -> tuple[dict[str, KeyValue], dict[int, tuple[str, int, float]]]:
    """The hub's keys by name, and the live leases' (session, ttl, deadline) by id."""
    state: dict[str, KeyValue] = {}
    leases: dict[int, tuple[str, int, float]] = {}
    lease_dir = f"{INTERNAL_DIR}leases/"
    for kv in items:
        if kv.key.startswith(lease_dir):
            parsed = _parse_lease_record(kv.value)
            with contextlib.suppress(ValueError):
                if parsed is not None:
                    leases[int(kv.key[len(lease_dir) :])] = parsed
        elif not kv.key.startswith(INTERNAL_DIR):
            state[kv.key] = kv
    return state, leases


def _parse_lease_record(value: bytes) -> tuple[str, int, float] | None:
    try:
        record = json.loads(value)
        return str(record["session"]), int(record["ttl"]), float(record["deadline"])
    except (ValueError, KeyError, TypeError):
        return None


def _kv_get(key: str, c: consul.Consul) -> tuple[Any, Any]:
    return c.kv.get(key)


def _check_revision(key: str, actual: int, expected: int | None) -> None:
    if expected is not None and actual != expected:
        raise RevisionConflict(
            f"key {key!r} is at revision {actual}, not {expected}",
            details={"key": key, "expected_revision": expected, "actual_revision": actual},
        )


def _translate(exc: BaseException) -> HubError:
    """The hub error for a py-consul or requests failure."""
    text = str(exc)
    if isinstance(exc, consul.ACLPermissionDenied | consul.ACLDisabled):
        return BackendPermissionDenied(
            f"Consul refused the hub's ACL token: {text or 'permission denied'}"
        )
    if isinstance(exc, consul.Timeout | requests.Timeout):
        return BackendTimeout(f"Consul did not answer in time: {text}")
    if isinstance(exc, requests.ConnectionError):
        return BackendUnavailable(f"cannot reach the Consul agent: {text}")
    if isinstance(exc, consul.ConsulException):
        if "403" in text[:4] or "Permission denied" in text or "ACL not found" in text:
            return BackendPermissionDenied(f"Consul refused the hub's ACL token: {text}")
        if text.startswith("400"):
            return InvalidRequest(f"Consul rejected the request: {text}")
        if "No cluster leader" in text:
            return NoQuorum(f"Consul has no cluster leader: {text}")
        return BackendUnavailable(f"Consul failed: {text}")
    return BackendUnavailable(f"Consul request failed: {type(exc).__name__}: {text}")


# -- leader election ----------------------------------------------------------------


class ConsulLeaderElection:
    """One holder at a time for a named piece of hub work, with a Consul session lock.

    The lock is ``<kv_prefix>.consul/leader/<name>``, acquired by a session with
    ``Behavior=release`` and a TTL: if the leader stops renewing (crash, partition) Consul
    invalidates the session and the lock is free again after at most twice the TTL.
    """

    def __init__(self, backend: ConsulBackend, name: str, *, holder: str, ttl: int = 15) -> None:
        if not name or "/" in name:
            raise InvalidRequest("an election name must be non-empty and without '/'")
        self.backend = backend
        self.name = name
        self.holder = holder
        self.ttl = min(max(ttl, MIN_SESSION_TTL), MAX_SESSION_TTL)
        self.key = backend._full(f"{INTERNAL_DIR}leader/{name}")
        self._session: str | None = None

    async def try_acquire(self) -> bool:
        """Become leader if nobody is; True if this holder is leader now."""
        if self._session is None:
            body = {
                "Name": f"central-hub leader {self.name}",
                "TTL": f"{self.ttl}s",
                "Behavior": "release",
                "LockDelay": "0s",
            }
            backend = self.backend

            def create(c: consul.Consul) -> str:
                session: str = c.http.put(
                    CB.json(is_id=True),
                    "/v1/session/create",
                    params=backend._params(),
                    data=json.dumps(body),
                    headers=c.prepare_headers(),
                )
                return session

            self._session = await backend._run(backend._call, create)
        session = self._session

        def acquire(c: consul.Consul) -> bool:
            acquired: bool = c.kv.put(self.key, self.holder, acquire=session)
            return acquired

        return await self.backend._run(self.backend._call, acquire)

    async def renew(self) -> bool:
        """Keep leadership; False (and no longer leader) if the session has expired."""
        if self._session is None:
            return False
        session = self._session
        backend = self.backend

        def renew(c: consul.Consul) -> bool:
            answer = c.http.put(
                CB.json(),  # 404 (session gone) reads as None
                f"/v1/session/renew/{session}",
                params=backend._params(),
                headers=c.prepare_headers(),
            )
            return bool(answer)

        if not await backend._run(backend._call, renew):
            self._session = None
            return False
        return await self.leader() == self.holder

    async def release(self) -> None:
        """Step down (if leader) and end the session."""
        session, self._session = self._session, None
        if session is None:
            return
        await self.backend._run(
            self.backend._call, lambda c: c.kv.put(self.key, self.holder, release=session)
        )
        await self.backend._run(
            self.backend._call, lambda c: c.session.destroy(session, dc=self.backend.datacenter)
        )

    async def leader(self) -> str | None:
        """The current leader's holder name, or None."""

        def read(c: consul.Consul) -> str | None:
            _, entry = c.kv.get(self.key)
            if not entry or not entry.get("Session"):
                return None
            value = entry.get("Value")
            return bytes(value).decode() if value else ""

        return await self.backend._run(self.backend._call, read)
