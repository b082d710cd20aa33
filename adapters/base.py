"""The one interface every state backend implements.

The hub keeps all of its state as keys in a flat, ordered keyspace with MVCC-style
revisions (the shape of etcd's v3 API, as k3s' kine does over SQL):

* **KV**: get, put, delete, range by prefix, and compare-and-set on a key's
  ``mod_revision`` (``if_revision=0`` means "only if absent").
* **Leases**: grant with a TTL, keep alive, revoke; keys put with a lease vanish (with a
  DELETE event) when it expires or is revoked.
* **Watch**: every change under a prefix, in revision order, resumable from any revision
  the backend still holds; older revisions raise :class:`~shared.errors.RevisionCompacted`
  and the caller resyncs from a fresh :meth:`Backend.range`.
* **Catalog**: service instances are keys under ``catalog/<service>/<instance>``. The
  default methods store them in KV; a backend with a native catalog (Consul) overrides
  them and reports catalog changes through the same watch.
* **Audit log**: append-only records kept *outside* the keyspace above (never in a
  :meth:`Backend.range` of ``""``, never in a watch), appended in batches (one write per
  batch), queried newest first and trimmed by age and count. Key-value backends keep one
  key per batch under a prefix of their own (see :meth:`Backend.append_audit`); the
  embedded backend keeps a table.

Every method raises only :mod:`shared.errors` exceptions; a backend translates its
client library's errors at its edge (``raise ... from exc``).
"""

from __future__ import annotations

import abc
import asyncio
import enum
import heapq
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from shared.errors import InvalidRequest, RevisionConflict

CATALOG_PREFIX = "catalog/"
HEALTH_PREFIX = "health/"
"""Where each instance's latest health result lives: ``health/<service>/<instance>``."""


def catalog_key(service: str, instance_id: str) -> str:
    """The key of one service instance."""
    return f"{CATALOG_PREFIX}{service}/{instance_id}"


def url_host(host: str) -> str:
    """``host`` as written in a URL or ``host:port``: an IPv6 address goes in brackets
    (once: a host already in brackets is kept as it is)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_revision(key: str, actual: int, expected: int | None) -> None:
    """Raise :class:`~shared.errors.RevisionConflict` unless ``key``'s ``mod_revision``
    (``actual``, 0 when absent) is the ``if_revision`` the caller expects (``None``: any)."""
    if expected is not None and actual != expected:
        raise RevisionConflict(
            f"key {key!r} is at revision {actual}, not {expected}",
            details={"key": key, "expected_revision": expected, "actual_revision": actual},
        )


def check_puts(puts: Sequence[Put]) -> None:
    """Refuse a :meth:`Backend.put_all` batch that no backend can apply atomically."""
    keys = [p.key for p in puts]
    if not keys:
        raise InvalidRequest("put_all needs at least one write")
    if len(set(keys)) != len(keys):
        raise InvalidRequest("put_all writes each key at most once")
    if any(k.startswith(CATALOG_PREFIX) for k in keys):
        raise InvalidRequest("catalog keys cannot be written by put_all")


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    if not prefix:
        return "\U0010ffff"
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class ChangeNotifier:
    """Wakes every waiter once per change (an in-memory fan-out within one process).

    Capture :meth:`current` *before* reading state and wait on it afterwards, so a change
    between the read and the wait is never missed.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def current(self) -> asyncio.Event:
        """The event the next change will set."""
        return self._event

    def notify(self) -> None:
        """Wake everyone waiting on the current event."""
        # Swap before setting, so every waiter that captured the old event wakes exactly
        # once and later waiters wait for the next change.
        event, self._event = self._event, asyncio.Event()
        event.set()

    def close(self) -> None:
        """Wake everyone for good (the owner is stopping)."""
        self.closed = True
        self.notify()


class EventType(enum.Enum):
    """What happened to a key."""

    PUT = "put"
    DELETE = "delete"
    PROGRESS = "progress"
    """No key changed; the backend has reached ``revision`` (lets watchers advance)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as stored, with its revisions."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int = 1
    lease: int | None = None


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change, in backend revision order."""

    type: EventType
    key: str
    revision: int
    value: bytes | None = None
    lease: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent read of a prefix as of ``revision``."""

    items: list[KeyValue]
    revision: int


@dataclass(frozen=True, slots=True)
class Put:
    """One write of :meth:`Backend.put_all`; ``if_revision`` as in :meth:`Backend.put`."""

    key: str
    value: bytes
    if_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease: keys bound to it vanish ``ttl`` seconds after the last keep-alive."""

    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend does natively, so the hub does not do it twice."""

    native_health_checks: bool = False
    """The backend runs instance health checks itself (Consul); the hub does not probe."""
    native_catalog: bool = False
    """Instances are the backend's own service registrations, not plain keys."""
    multi_process: bool = True
    """Several hub processes may share one backend (replicas)."""


AuditRecord = dict[str, Any]
"""One audit record: JSON-serialisable, with a string ``id`` that sorts chronologically
(``<nanoseconds, 20 digits>-<random hex>``) and optional ``tenant_id``, ``token_id`` and
``action`` strings that queries filter on."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit records to read: newest first, at most ``limit``, all filters ANDed."""

    tenant_id: str | None = None
    token_id: str | None = None
    action: str | None = None
    """A substring of the record's ``action``."""
    before: str | None = None
    """Only records whose ``id`` sorts before this one (paging)."""
    limit: int = 100

    def matches(self, record: AuditRecord) -> bool:
        """Whether ``record`` passes the filters (``before`` included)."""
        if self.before is not None and str(record.get("id", "")) >= self.before:
            return False
        if self.tenant_id is not None and record.get("tenant_id") != self.tenant_id:
            return False
        if self.token_id is not None and record.get("token_id") != self.token_id:
            return False
        return self.action is None or self.action in str(record.get("action") or "")


@dataclass(frozen=True, slots=True)
class AuditBatchName:
    """The key of one stored batch: ``<last id>_<first id>_<count>``.

    Keys sort by the batch's newest record, and a keys-only listing tells the time span
    and size of every batch, so trimming never reads a value.
    """

    last_id: str
    first_id: str
    count: int

    def __str__(self) -> str:
        return f"{self.last_id}_{self.first_id}_{self.count}"

    @classmethod
    def parse(cls, name: str) -> AuditBatchName | None:
        """The name's parts, or ``None`` for a key that is not a batch."""
        parts = name.rsplit("/", 1)[-1].split("_")
        if len(parts) != 3 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]))


AUDIT_BATCH_BYTES = 192 * 1024
"""Largest batch value a key-value backend writes (Consul refuses values over 512 KiB and
transactions over 512 KiB; etcd requests over 1.5 MiB)."""


class Backend(abc.ABC):
    """Storage, leases and change feed for one hub keyspace.

    Instances are created closed; call :meth:`open` before use and :meth:`close` after.
    All methods are coroutines and never block the event loop.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (or create the store). May raise BackendUnavailable; may be retried."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and stop background work. Idempotent."""

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The newest revision; doubles as a liveness check."""

    # -- KV -------------------------------------------------------------------------

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None:
        """One key, or ``None`` if absent."""

    @abc.abstractmethod
    async def range(self, prefix: str) -> Snapshot:
        """All keys starting with ``prefix`` (``""`` = everything), in key order."""

    @abc.abstractmethod
    async def put(
        self,
        key: str,
        value: bytes,
        *,
        lease: int | None = None,
        if_revision: int | None = None,
    ) -> int:
        """Write ``key``; return the revision of the write.

        ``if_revision``: ``None`` writes unconditionally; ``0`` only if the key is absent;
        ``n`` only if the key's ``mod_revision`` is ``n``. A failed condition raises
        :class:`~shared.errors.RevisionConflict` and writes nothing. An unknown or expired
        ``lease`` raises :class:`~shared.errors.LeaseNotFound`.
        """

    @abc.abstractmethod
    async def put_all(self, puts: Sequence[Put]) -> int:
        """Write several keys in one transaction: all of them, or none.

        Every ``if_revision`` condition is checked before anything is written; one that
        fails raises :class:`~shared.errors.RevisionConflict` and writes nothing. Keys
        must be distinct and outside the catalog; leases are not supported here. Returns
        the revision of the last write (backends with one revision per transaction give
        every write that revision).
        """

    @abc.abstractmethod
    async def delete(self, key: str, *, if_revision: int | None = None) -> int | None:
        """Delete ``key``; return the revision of the delete, or ``None`` if it was absent.

        ``if_revision`` as in :meth:`put` (``0`` is meaningless here and is rejected).
        """

    # -- leases ---------------------------------------------------------------------

    @abc.abstractmethod
    async def grant_lease(self, ttl: int) -> Lease:
        """A new lease of ``ttl`` seconds (at least 1)."""

    @abc.abstractmethod
    async def keep_alive(self, lease_id: int) -> int:
        """Renew a lease; return its TTL. Raises LeaseNotFound once it has expired."""

    @abc.abstractmethod
    async def revoke_lease(self, lease_id: int) -> None:
        """End a lease now, deleting its keys. Unknown leases are ignored."""

    # -- watch ----------------------------------------------------------------------

    @abc.abstractmethod
    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` with revision >= ``start_revision``, in order, forever.

        May yield :attr:`EventType.PROGRESS` events so an idle watcher learns the current
        revision. Raises RevisionCompacted when ``start_revision`` is no longer held and
        BackendUnavailable when the stream breaks; the caller resumes from the last
        revision it saw plus one.
        """

    # -- catalog (default: plain keys) ----------------------------------------------

    async def put_instance(
        self, service: str, instance_id: str, record: bytes, *, lease: int | None = None
    ) -> int:
        """Store one service instance record (JSON bytes); return the write's revision."""
        return await self.put(catalog_key(service, instance_id), record, lease=lease)

    async def delete_instance(self, service: str, instance_id: str) -> int | None:
        """Remove one instance; return the revision, or ``None`` if it was absent."""
        return await self.delete(catalog_key(service, instance_id))

    def describe(self) -> dict[str, Any]:
        """Non-secret facts for the hub's ``/health`` answer."""
        return {"name": self.name}

    # -- audit log (outside the keyspace; default: one key per batch) ----------------

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` (in ``id`` order), in one write when they fit in one.

        The default keeps each batch as one value (JSON lines) under a key the backend's
        :meth:`_audit_put` places outside its watched keyspace; batches larger than
        :data:`AUDIT_BATCH_BYTES` are split.
        """
        chunk: list[bytes] = []
        size = 0
        first_id = last_id = ""
        for record in sorted(records, key=lambda r: str(r["id"])):
            line = orjson.dumps(record)
            if chunk and size + len(line) > AUDIT_BATCH_BYTES:
                await self._audit_put(str(AuditBatchName(last_id, first_id, len(chunk))), chunk)
                chunk, size = [], 0
            if not chunk:
                first_id = str(record["id"])
            last_id = str(record["id"])
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            await self._audit_put(str(AuditBatchName(last_id, first_id, len(chunk))), chunk)

    async def query_audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Records matching ``query``, newest first, at most ``query.limit``."""
        names = [n for n in map(AuditBatchName.parse, await self._audit_names()) if n]
        names.sort(key=lambda n: n.last_id, reverse=True)
        found: list[AuditRecord] = []
        # Batches of several replicas may overlap in time: a loaded record is emitted only
        # once every batch that could hold a newer one has been loaded too.
        pending: list[tuple[_Descending, int, AuditRecord]] = []

        def emit_down_to(floor: str | None) -> bool:
            while pending and (floor is None or pending[0][0].value > floor):
                _, _, record = heapq.heappop(pending)
                if query.matches(record):
                    found.append(record)
                    if len(found) >= query.limit:
                        return True
            return False

        for name in names:
            if emit_down_to(name.last_id):
                return found
            if query.before is not None and name.first_id >= query.before:
                continue
            for record in await self._audit_read(str(name)):
                heapq.heappush(pending, (_Descending(str(record["id"])), len(pending), record))
        emit_down_to(None)
        return found

    async def trim_audit(self, *, older_than: str, max_records: int) -> int:
        """Delete records whose ``id`` sorts before ``older_than``, then the oldest until at
        most ``max_records`` remain; return how many were deleted.

        The default works in whole batches: a batch goes when its newest record is too
        old, or while the records kept exceed ``max_records``.
        """
        names = [n for n in map(AuditBatchName.parse, await self._audit_names()) if n]
        names.sort(key=lambda n: n.last_id)
        total = sum(n.count for n in names)
        doomed: list[AuditBatchName] = []
        for name in names:
            if name.last_id >= older_than and total <= max_records:
                break
            doomed.append(name)
            total -= name.count
        if doomed:
            await self._audit_delete([str(n) for n in doomed])
        return sum(n.count for n in doomed)

    async def _audit_put(self, name: str, lines: list[bytes]) -> None:
        """Write one batch value (``lines`` joined by newlines) under ``name``."""
        raise NotImplementedError(f"the {self.name} backend keeps no audit log")

    async def _audit_names(self) -> list[str]:
        """The names of every stored batch."""
        raise NotImplementedError(f"the {self.name} backend keeps no audit log")

    async def _audit_get(self, name: str) -> bytes | None:
        """One batch's value, or ``None`` if it was trimmed meanwhile."""
        raise NotImplementedError(f"the {self.name} backend keeps no audit log")

    async def _audit_delete(self, names: list[str]) -> None:
        """Delete the named batches."""
        raise NotImplementedError(f"the {self.name} backend keeps no audit log")

    async def _audit_read(self, name: str) -> list[AuditRecord]:
        value = await self._audit_get(name)
        return list(_audit_lines(value)) if value else []

    # -- backup and restore (issue 14) ------------------------------------------------

    snapshot_consistency: ClassVar[str] = (
        "one read transaction: every key as of the snapshot's revision"
    )
    """What :meth:`snapshot` guarantees on this backend (shown in backup headers)."""

    async def snapshot(self) -> Snapshot:
        """The whole keyspace as of one revision, for a backup.

        Every write acknowledged at or before ``revision`` is in ``items`` and nothing
        later is. The default is :meth:`range` of ``""``, which is one read transaction
        on backends whose range is (the embedded store); backends that would otherwise
        answer from a possibly stale copy override this to refuse instead.
        """
        return await self.range("")

    async def load(
        self, items: Sequence[KeyValue], *, replace: bool = False, keep_revisions: bool = True
    ) -> LoadReport:
        """Write a backup's keys (restore); the keyspace must be empty unless ``replace``.

        ``replace`` first deletes every key that is not in ``items`` (catalog entries
        included). Lease-bound items are refused: leases do not survive a restore.

        ``keep_revisions``: when the backend's revision is still below the smallest
        ``mod_revision`` of ``items``, keys are written in revision order and the revision
        is advanced in between (writes of a scratch key, deleted at the end) so every key
        gets its original ``mod_revision`` back: config versions, tenant versions and
        ETags stay what clients saw. Otherwise keys get new revisions and
        :attr:`LoadReport.revisions_kept` is false. Not atomic in this default form (one
        write per key); the embedded backend overrides it with one transaction.
        """
        from shared.errors import Conflict, InvalidRequest

        if any(kv.lease is not None for kv in items):
            raise InvalidRequest("leases do not survive a restore: drop lease-bound keys first")
        present = await self._restore_present()
        wanted = {kv.key for kv in items}
        if present and not replace:
            raise Conflict(
                f"the {self.name} keyspace is not empty ({len(present)} keys); "
                "restore only into an empty one, or replace it (--force)",
                details={"keys": len(present)},
            )
        for kv in present:
            if kv.key in wanted:
                continue
            if kv.key.startswith(CATALOG_PREFIX):
                service, _, instance = kv.key[len(CATALOG_PREFIX) :].partition("/")
                await self.delete_instance(service, instance)
            else:
                await self.delete(kv.key)
        ordered = sorted(items, key=lambda kv: (kv.mod_revision, kv.key))
        head = await self.current_revision()
        keep = (
            keep_revisions
            and bool(ordered)
            and head < ordered[-1].mod_revision
            # Each revision skipped costs one write: beyond this, new revisions are cheaper.
            and ordered[-1].mod_revision - head - len(ordered) <= MAX_RESTORE_PADDING
        )
        kept = keep and head < ordered[0].mod_revision
        scratch = RESTORE_SCRATCH_KEY
        padded = False
        for kv in ordered:
            if keep:
                gap = kv.mod_revision - head - 1
                while gap > 0:
                    # Each write moves the revision by exactly one, whatever its order.
                    step = min(gap, 32)
                    revs = await asyncio.gather(*(self.put(scratch, b"") for _ in range(step)))
                    head = max(head, *revs)
                    gap = kv.mod_revision - head - 1
                    padded = True
            if kv.key.startswith(CATALOG_PREFIX):
                service, _, instance = kv.key[len(CATALOG_PREFIX) :].partition("/")
                rev = await self.put_instance(service, instance, kv.value)
            else:
                rev = await self.put(kv.key, kv.value)
            if rev != kv.mod_revision:
                # Its revision was taken (the target's own history, or another writer):
                # this key differs, the later ones may still be placed exactly.
                kept = False
            head = max(head, rev)
        if padded:
            await self.delete(scratch)
        return LoadReport(keys=len(ordered), revisions_kept=kept, atomic=False)

    async def _restore_present(self) -> list[KeyValue]:
        """The keys a restore must find absent (or replace): the whole keyspace."""
        return (await self.range("")).items


MAX_RESTORE_PADDING = 200_000
"""Most revision-advancing writes :meth:`Backend.load` makes to keep revisions."""

RESTORE_SCRATCH_KEY = "restore/scratch"
"""The key :meth:`Backend.load` writes to advance the revision; deleted when it ends."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What :meth:`Backend.load` did."""

    keys: int
    revisions_kept: bool
    """Every key got its original ``mod_revision`` back."""
    atomic: bool
    """The load (and the replacement) was one transaction."""


class _Descending:
    """Orders strings in reverse, so heapq's min-heap pops the newest id first."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return self.value > other.value


def _audit_lines(value: bytes) -> Iterable[AuditRecord]:
    for line in value.split(b"\n"):
        if line:
            record = orjson.loads(line)
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                yield record
