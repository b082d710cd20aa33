"""The embedded default backend: one SQLite file, no set-up.

Layout follows k3s' kine: ``kv`` holds current values, ``log`` is an append-only revision
log (its AUTOINCREMENT id *is* the revision), and watchers poll the log for rows past the
revision they have seen. Audit records live in their own ``audit`` table, outside the
keyspace and the revision log: appending them moves no revision and wakes no watcher.
Leases live in ``leases``; a reaper deletes the keys of expired leases (logging DELETE
events like any other write). The file uses WAL with
``synchronous=FULL``, so every acknowledged write survives a ``kill -9`` (and power loss).

Several hub processes may open the same file: writes take SQLite's write lock
(``BEGIN IMMEDIATE``), and watchers notice other processes' writes by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson

from adapters.base import (
    AuditQuery,
    AuditRecord,
    Backend,
    Capabilities,
    ChangeNotifier,
    EventType,
    KeyValue,
    Lease,
    LoadReport,
    Put,
    Snapshot,
    WatchEvent,
    check_puts,
    check_revision,
    prefix_end,
)
from shared.errors import (
    BackendTimeout,
    BackendUnavailable,
    Conflict,
    InvalidRequest,
    LeaseNotFound,
    RevisionCompacted,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv(lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    type INTEGER NOT NULL,
    value BLOB,
    lease INTEGER
);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY,
    ttl INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,
    token_id TEXT,
    action TEXT,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit(tenant_id, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_token ON audit(token_id, id) WHERE token_id IS NOT NULL;
"""

_PUT, _DELETE = 0, 1
_DB_FILE = "hub.sqlite3"


class SQLiteBackend(Backend):
    """Hub state in one SQLite file under ``data_dir``."""

    name: ClassVar[str] = "embedded"
    capabilities: ClassVar[Capabilities] = Capabilities(multi_process=True)

    def __init__(
        self,
        data_dir: str | Path,
        *,
        poll_interval: float = 0.05,
        reap_interval: float = 0.25,
        log_retention: int = 100_000,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(data_dir) / _DB_FILE
        self.poll_interval = poll_interval
        self.reap_interval = reap_interval
        self.log_retention = log_retention
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._changes = ChangeNotifier()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-sqlite")
        self._changes = ChangeNotifier()
        self._closed = False
        await self._run(self._open_sync)
        self._reaper = asyncio.create_task(self._reap_forever(), name="sqlite-lease-reaper")

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.executescript(_SCHEMA)
            # A new store starts at revision 1 and its first write is 2, as in etcd: a
            # backup restored into a fresh etcd can then keep every revision (issue 14).
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'log', 1 "
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'log')"
            )
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailable(
                f"cannot open the embedded store at {self.path}: {exc}",
                details={"path": str(self.path)},
            ) from exc
        self._conn = conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._changes.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._executor is not None:
            if self._conn is not None:
                conn = self._conn
                await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
                self._conn = None
            self._executor.shutdown(wait=True)
            self._executor = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path)}

    # -- plumbing -------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise BackendUnavailable("the embedded store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise BackendTimeout(f"the embedded store is busy: {exc}") from exc
            raise BackendUnavailable(f"the embedded store failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"the embedded store failed: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BackendUnavailable("the embedded store is not open")
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._db()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _head(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _append(
        conn: sqlite3.Connection, key: str, kind: int, value: bytes | None, lease: int | None
    ) -> int:
        cur = conn.execute(
            "INSERT INTO log (key, type, value, lease) VALUES (?, ?, ?, ?)",
            (key, kind, value, lease),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    # -- KV -------------------------------------------------------------------------

    async def current_revision(self) -> int:
        return await self._run(lambda: self._head(self._db()))

    async def get(self, key: str) -> KeyValue | None:
        return await self._run(self._get_sync, key)

    def _get_sync(self, key: str) -> KeyValue | None:
        row = (
            self._db()
            .execute(
                "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key = ?",
                (key,),
            )
            .fetchone()
        )
        return _kv(row) if row else None

    async def range(self, prefix: str) -> Snapshot:
        return await self._run(self._range_sync, prefix)

    def _range_sync(self, prefix: str) -> Snapshot:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT key, value, create_rev, mod_rev, version, lease FROM kv "
                "WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix_end(prefix)),
            ).fetchall()
            head = self._head(conn)
        return Snapshot(items=[_kv(r) for r in rows], revision=head)

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        lease: int | None = None,
        if_revision: int | None = None,
    ) -> int:
        rev = await self._run(self._put_sync, key, bytes(value), lease, if_revision)
        self._changes.notify()
        return rev

    def _put_sync(self, key: str, value: bytes, lease: int | None, if_revision: int | None) -> int:
        with self._write() as conn:
            row = conn.execute("SELECT mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
            check_revision(key, row[0] if row else 0, if_revision)
            if lease is not None:
                held = conn.execute(
                    "SELECT expires_at FROM leases WHERE id = ?", (lease,)
                ).fetchone()
                if held is None or held[0] <= time.time():
                    raise LeaseNotFound(f"lease {lease} does not exist or has expired")
            rev = self._append(conn, key, _PUT, value, lease)
            if row:
                conn.execute(
                    "UPDATE kv SET value = ?, mod_rev = ?, version = version + 1, lease = ? "
                    "WHERE key = ?",
                    (value, rev, lease, key),
                )
            else:
                conn.execute(
                    "INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) "
                    "VALUES (?, ?, ?, ?, 1, ?)",
                    (key, value, rev, rev, lease),
                )
            return rev

    async def put_all(self, puts: Sequence[Put]) -> int:
        check_puts(puts)
        rev = await self._run(
            self._put_all_sync, [(p.key, bytes(p.value), p.if_revision) for p in puts]
        )
        self._changes.notify()
        return rev

    def _put_all_sync(self, puts: list[tuple[str, bytes, int | None]]) -> int:
        with self._write() as conn:
            existing = {}
            for key, _, if_revision in puts:
                row = conn.execute("SELECT mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
                check_revision(key, row[0] if row else 0, if_revision)
                existing[key] = row is not None
            rev = 0
            for key, value, _ in puts:
                rev = self._append(conn, key, _PUT, value, None)
                if existing[key]:
                    conn.execute(
                        "UPDATE kv SET value = ?, mod_rev = ?, version = version + 1, lease = NULL "
                        "WHERE key = ?",
                        (value, rev, key),
                    )
                else:
                    conn.execute(
                        "INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) "
                        "VALUES (?, ?, ?, ?, 1, NULL)",
                        (key, value, rev, rev),
                    )
            return rev

    async def delete(self, key: str, *, if_revision: int | None = None) -> int | None:
        if if_revision == 0:
            raise InvalidRequest("a delete cannot require the key to be absent")
        rev = await self._run(self._delete_sync, key, if_revision)
        if rev is not None:
            self._changes.notify()
        return rev

    def _delete_sync(self, key: str, if_revision: int | None) -> int | None:
        with self._write() as conn:
            row = conn.execute("SELECT mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
            check_revision(key, row[0] if row else 0, if_revision)
            if row is None:
                return None
            rev = self._append(conn, key, _DELETE, None, None)
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            return rev

    # -- leases ---------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> Lease:
        if ttl < 1:
            raise InvalidRequest("a lease TTL must be at least 1 second")
        lease_id = secrets.randbits(62) + 1
        await self._run(self._grant_sync, lease_id, ttl)
        return Lease(id=lease_id, ttl=ttl)

    def _grant_sync(self, lease_id: int, ttl: int) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO leases (id, ttl, expires_at) VALUES (?, ?, ?)",
                (lease_id, ttl, time.time() + ttl),
            )

    async def keep_alive(self, lease_id: int) -> int:
        return await self._run(self._keep_alive_sync, lease_id)

    def _keep_alive_sync(self, lease_id: int) -> int:
        with self._write() as conn:
            row = conn.execute(
                "SELECT ttl, expires_at FROM leases WHERE id = ?", (lease_id,)
            ).fetchone()
            now = time.time()
            if row is None or row[1] <= now:
                raise LeaseNotFound(f"lease {lease_id} does not exist or has expired")
            conn.execute("UPDATE leases SET expires_at = ? WHERE id = ?", (now + row[0], lease_id))
            return int(row[0])

    async def revoke_lease(self, lease_id: int) -> None:
        if await self._run(self._revoke_sync, [lease_id]):
            self._changes.notify()

    def _revoke_sync(self, lease_ids: list[int]) -> int:
        deleted = 0
        with self._write() as conn:
            for lease_id in lease_ids:
                keys = conn.execute("SELECT key FROM kv WHERE lease = ?", (lease_id,)).fetchall()
                for (key,) in keys:
                    self._append(conn, key, _DELETE, None, None)
                    deleted += 1
                conn.execute("DELETE FROM kv WHERE lease = ?", (lease_id,))
                conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
        return deleted

    def _reap_sync(self) -> int:
        expired = [
            int(r[0])
            for r in self._db()
            .execute("SELECT id FROM leases WHERE expires_at <= ?", (time.time(),))
            .fetchall()
        ]
        deleted = self._revoke_sync(expired) if expired else 0
        self._compact_sync()
        return deleted

    async def compact(self, revision: int) -> None:
        """Forget the history before ``revision`` (watches from older revisions fail)."""
        await self._run(self._compact_sync, revision - 1)

    def _compact_sync(self, floor: int | None = None) -> None:
        with self._write() as conn:
            if floor is None:
                floor = self._head(conn) - self.log_retention
            row = conn.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()
            if floor <= (row[0] if row else 0):
                return
            conn.execute("DELETE FROM log WHERE rev <= ?", (floor,))
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('compacted', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (floor,),
            )

    async def _reap_forever(self) -> None:
        while not self._closed:
            try:
                if await self._run(self._reap_sync):
                    self._changes.notify()
            except BackendUnavailable:
                pass  # busy or briefly failing: the next round retries
            await asyncio.sleep(self.reap_interval)

    # -- audit log (its own table: no revision, no watch event) -----------------------

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        rows = [
            (
                str(r["id"]),
                _text(r.get("tenant_id")),
                _text(r.get("token_id")),
                _text(r.get("action")),
                orjson.dumps(r),
            )
            for r in records
        ]
        if rows:
            await self._run(self._append_audit_sync, rows)

    def _append_audit_sync(self, rows: list[tuple[str, Any, Any, Any, bytes]]) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO audit (id, tenant_id, token_id, action, record) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    async def query_audit(self, query: AuditQuery) -> list[AuditRecord]:
        return await self._run(self._query_audit_sync, query)

    def _query_audit_sync(self, query: AuditQuery) -> list[AuditRecord]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("tenant_id", query.tenant_id), ("token_id", query.token_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.before is not None:
            where.append("id < ?")
            args.append(query.before)
        if query.action is not None:
            where.append("instr(action, ?) > 0")
            args.append(query.action)
        sql = "SELECT record FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._db().execute(f"{sql} ORDER BY id DESC LIMIT ?", (*args, query.limit))
        return [orjson.loads(row[0]) for row in rows.fetchall()]

    async def trim_audit(self, *, older_than: str, max_records: int) -> int:
        return await self._run(self._trim_audit_sync, older_than, max_records)

    def _trim_audit_sync(self, older_than: str, max_records: int) -> int:
        with self._write() as conn:
            deleted = conn.execute("DELETE FROM audit WHERE id < ?", (older_than,)).rowcount
            # The newest record beyond the allowance; it and everything older go.
            row = conn.execute(
                "SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?", (max_records,)
            ).fetchone()
            if row is not None:
                deleted += conn.execute("DELETE FROM audit WHERE id <= ?", (row[0],)).rowcount
        return int(deleted)

    # -- watch ----------------------------------------------------------------------

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        next_rev = max(1, start_revision)
        end = prefix_end(prefix)
        batch = 1000
        while not self._closed:
            changed = self._changes.current()
            rows, head = await self._run(self._log_since_sync, prefix, end, next_rev, batch)
            for rev, key, kind, value, lease in rows:
                yield WatchEvent(
                    type=EventType.PUT if kind == _PUT else EventType.DELETE,
                    key=key,
                    revision=rev,
                    value=value,
                    lease=lease,
                )
                next_rev = rev + 1
            if len(rows) == batch:
                continue
            if head >= next_rev:
                yield WatchEvent(type=EventType.PROGRESS, key="", revision=head)
                next_rev = head + 1
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await changed.wait()
        raise BackendUnavailable("the embedded store was closed")

    def _log_since_sync(
        self, prefix: str, end: str, start: int, limit: int
    ) -> tuple[list[tuple[int, str, int, bytes | None, int | None]], int]:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()
            compacted = row[0] if row else 0
            if start <= compacted:
                raise RevisionCompacted(
                    f"revision {start} has been compacted (oldest kept: {compacted + 1})",
                    details={"compacted_revision": compacted},
                )
            rows = conn.execute(
                "SELECT rev, key, type, value, lease FROM log "
                "WHERE rev >= ? AND key >= ? AND key < ? ORDER BY rev LIMIT ?",
                (start, prefix, end, limit),
            ).fetchall()
            head = self._head(conn)
        if len(rows) == limit:
            head = rows[-1][0]
        return rows, head

    # -- restore (issue 14): one transaction, original revisions -----------------------

    async def load(
        self, items: Sequence[KeyValue], *, replace: bool = False, keep_revisions: bool = True
    ) -> LoadReport:
        """Restore in one transaction: all of ``items`` (and the replacement) or nothing.

        Keys keep their original create/mod revisions and versions when the store's
        revision is below every one of them (the log's sequence then jumps to the
        newest); otherwise they get fresh revisions, in their original order.
        """
        if any(kv.lease is not None for kv in items):
            raise InvalidRequest("leases do not survive a restore: drop lease-bound keys first")
        ordered = sorted(items, key=lambda kv: (kv.mod_revision, kv.key))
        kept = await self._run(self._load_sync, ordered, replace, keep_revisions)
        self._changes.notify()
        return LoadReport(keys=len(ordered), revisions_kept=kept, atomic=True)

    def _load_sync(self, items: list[KeyValue], replace: bool, keep_revisions: bool) -> bool:
        with self._write() as conn:
            present = [row[0] for row in conn.execute("SELECT key FROM kv").fetchall()]
            if present and not replace:
                raise Conflict(
                    f"the embedded keyspace is not empty ({len(present)} keys); "
                    "restore only into an empty one, or replace it (--force)",
                    details={"keys": len(present)},
                )
            for key in present:
                self._append(conn, key, _DELETE, None, None)
            conn.execute("DELETE FROM kv")
            head = self._head(conn)
            keep = keep_revisions and bool(items) and head < items[0].mod_revision
            for kv in items:
                if keep:
                    conn.execute(
                        "INSERT INTO log (rev, key, type, value, lease) VALUES (?, ?, ?, ?, NULL)",
                        (kv.mod_revision, kv.key, _PUT, kv.value),
                    )
                    row = (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version)
                else:
                    rev = self._append(conn, kv.key, _PUT, kv.value, None)
                    row = (kv.key, kv.value, rev, rev, 1)
                conn.execute(
                    "INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) "
                    "VALUES (?, ?, ?, ?, ?, NULL)",
                    row,
                )
            return keep


def _kv(row: tuple[Any, ...]) -> KeyValue:
    return KeyValue(
        key=row[0],
        value=bytes(row[1]),
        create_revision=row[2],
        mod_revision=row[3],
        version=row[4],
        lease=row[5],
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
