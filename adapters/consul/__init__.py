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
"""

from adapters.consul.backend import ConsulBackend
from adapters.consul.catalog import (
    NATIVE_META_KEYS,
    record_from_service,
    registration_as_catalog_entry,
    registration_for,
)

__all__ = [
    "NATIVE_META_KEYS",
    "ConsulBackend",
    "record_from_service",
    "registration_as_catalog_entry",
    "registration_for",
]
