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

Every method raises only :mod:`shared.errors` exceptions; a backend translates its
client library's errors at its edge (``raise ... from exc``).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

CATALOG_PREFIX = "catalog/"


def catalog_key(service: str, instance_id: str) -> str:
    """The key of one service instance."""
    return f"{CATALOG_PREFIX}{service}/{instance_id}"


def check_puts(puts: Sequence[Put]) -> None:
    """Refuse a :meth:`Backend.put_all` batch that no backend can apply atomically."""
    from shared.errors import InvalidRequest

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
