"""The telemetry store: time series of (service, metric, tenant) points behind one interface.

Services report points with ``POST /telemetry`` (see :mod:`facade.telemetry.ingest`);
monitoring and forecasting read them back by range. Like the state backends, the store is
an interface (:class:`TelemetryStore`) with implementations chosen by configuration
(``HUB_TELEMETRY_STORE``):

* ``embedded`` (:class:`EmbeddedTelemetryStore`, the default): one SQLite file in the data
  directory (``telemetry.sqlite3``), WAL mode. Each point is one row keyed by
  ``(series, ts)``, so writing the same (service, metric, tenant, ts) again replaces the
  value (backfill and re-sends are idempotent) and points may arrive in any order.

What is deliberately left for later (issue 15), and where it plugs in:

* **rollups and retention** (10 s points kept 48 h, 1-min rollups 30 days, 1-h rollups a
  year): :meth:`TelemetryStore.query` takes ``step``; a store with rollup tables answers
  from the coarsest tier that is at least as fine as ``step``. The embedded store keeps
  raw points only today and aggregates them on the fly when ``step`` is given.
* **a Prometheus-backed store** (``HUB_PROMETHEUS_URL``): :meth:`query` maps to
  ``query_range`` with ``step``, :meth:`series` to ``/api/v1/series``; :meth:`write`
  is refused there (Prometheus scrapes, it is not written to).

Several hub replicas each have their own embedded store, which sees only the points that
reached that replica: with more than one replica, send a service's telemetry to one
replica (or use the Prometheus store once it exists).
"""

from __future__ import annotations

import abc
import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

TELEMETRY_FILE = "telemetry.sqlite3"
NO_TENANT = ""
"""How a series without a tenant is keyed (SQLite treats NULLs as distinct in keys)."""

Aggregate = Literal["sum", "avg", "max", "min"]


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One series: a service's metric, for one tenant or for none (``tenant_id=None``)."""

    service: str
    metric: str
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """How much of a series is stored: point count, oldest and newest timestamps."""

    count: int
    first_ts: float | None
    last_ts: float | None
    writes: int
    """Points written to this series since the store opened (replacements included);
    grows with every write, so caches can tell that the series changed."""


Point = tuple[float, float]
"""``(ts, value)``: unix seconds and the value."""


class TelemetryStore(abc.ABC):
    """Where telemetry points live. Implementations must be safe to share between tasks."""

    kind: str = "abstract"

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or open the store; raise OSError / sqlite3.Error if it cannot be used."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store's resources."""

    @abc.abstractmethod
    async def write(self, key: SeriesKey, points: Sequence[Point]) -> int:
        """Store ``points`` of one series in one transaction; the same ts replaces.

        Returns the number of points written. All or nothing.
        """

    @abc.abstractmethod
    async def query(
        self,
        key: SeriesKey,
        start: float | None = None,
        end: float | None = None,
        *,
        step: float | None = None,
        aggregate: Aggregate = "sum",
        limit: int | None = None,
    ) -> list[Point]:
        """Points of one series with ``start <= ts <= end``, oldest first.

        With ``step``, points are aggregated into buckets of ``step`` seconds (each bucket
        stamped with its end, like a counter over the interval ending at ``ts``). With
        ``limit``, the newest ``limit`` points (or buckets) of the range.
        """

    @abc.abstractmethod
    async def stats(self, key: SeriesKey) -> SeriesStats:
        """Count, oldest and newest ts of one series (zero / None when it has none)."""

    @abc.abstractmethod
    async def series(self, service: str | None = None) -> list[SeriesKey]:
        """Every stored series, of one service if given."""


class EmbeddedTelemetryStore(TelemetryStore):
    """Raw points in one SQLite file (WAL); every write is one transaction.

    SQLite calls run in a worker thread, serialised by a lock (one connection), so the
    event loop never blocks on disk.
    """

    kind = "embedded"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._series_ids: dict[SeriesKey, int] = {}
        self._writes: dict[int, int] = {}

    async def open(self) -> None:
        """Create the file and schema (parents too) if missing."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # Telemetry is re-sent by services and tolerates losing the last instant on power
        # loss: NORMAL keeps the file consistent without an fsync per batch.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS series (
                id INTEGER PRIMARY KEY,
                service TEXT NOT NULL,
                metric TEXT NOT NULL,
                tenant TEXT NOT NULL,
                UNIQUE (service, metric, tenant)
            );
            CREATE TABLE IF NOT EXISTS points (
                series INTEGER NOT NULL,
                ts REAL NOT NULL,
                value REAL NOT NULL,
                PRIMARY KEY (series, ts)
            ) WITHOUT ROWID;
            """
        )
        for sid, service, metric, tenant in conn.execute(
            "SELECT id, service, metric, tenant FROM series"
        ):
            self._series_ids[SeriesKey(service, metric, tenant or None)] = sid
        self._conn = conn

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(self._close, conn)

    def _close(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            conn.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the telemetry store is not open")
        return self._conn

    def _series_id(self, key: SeriesKey, create: bool) -> int | None:
        sid = self._series_ids.get(key)
        if sid is not None or not create:
            return sid
        conn = self._db()
        tenant = key.tenant_id or NO_TENANT
        conn.execute(
            "INSERT OR IGNORE INTO series (service, metric, tenant) VALUES (?, ?, ?)",
            (key.service, key.metric, tenant),
        )
        row = conn.execute(
            "SELECT id FROM series WHERE service = ? AND metric = ? AND tenant = ?",
            (key.service, key.metric, tenant),
        ).fetchone()
        sid = int(row[0])
        self._series_ids[key] = sid
        return sid

    async def write(self, key: SeriesKey, points: Sequence[Point]) -> int:
        """Insert or replace ``points`` in one transaction."""
        if not points:
            return 0
        return await asyncio.to_thread(self._write, key, points)

    def _write(self, key: SeriesKey, points: Sequence[Point]) -> int:
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                sid = self._series_id(key, create=True)
                conn.executemany(
                    "INSERT OR REPLACE INTO points (series, ts, value) VALUES (?, ?, ?)",
                    [(sid, float(ts), float(value)) for ts, value in points],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                # The series row may have been rolled back with the points.
                self._series_ids.pop(key, None)
                raise
            assert sid is not None
            self._writes[sid] = self._writes.get(sid, 0) + len(points)
            return len(points)

    async def query(
        self,
        key: SeriesKey,
        start: float | None = None,
        end: float | None = None,
        *,
        step: float | None = None,
        aggregate: Aggregate = "sum",
        limit: int | None = None,
    ) -> list[Point]:
        """Raw points, or buckets of ``step`` seconds aggregated on the fly."""
        return await asyncio.to_thread(self._query, key, start, end, step, aggregate, limit)

    def _query(
        self,
        key: SeriesKey,
        start: float | None,
        end: float | None,
        step: float | None,
        aggregate: Aggregate,
        limit: int | None,
    ) -> list[Point]:
        with self._lock:
            sid = self._series_id(key, create=False)
            if sid is None:
                return []
            where = "series = ? AND ts >= ? AND ts <= ?"
            args: list[float | int] = [
                sid,
                float("-inf") if start is None else start,
                float("inf") if end is None else end,
            ]
            if step is None:
                sql = f"SELECT ts, value FROM points WHERE {where} ORDER BY ts DESC"
            else:
                function = {"sum": "SUM", "avg": "AVG", "max": "MAX", "min": "MIN"}[aggregate]
                # Bucket ending at ceil(ts / step) * step: the interval the values fall in.
                bucket = "(-CAST(-ts / ? AS INTEGER)) * ?"
                sql = (
                    f"SELECT {bucket} AS b, {function}(value) FROM points WHERE {where} "
                    "GROUP BY b ORDER BY b DESC"
                )
                args = [step, step, *args]
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            rows = self._db().execute(sql, args).fetchall()
        rows.reverse()
        return [(float(ts), float(value)) for ts, value in rows]

    async def stats(self, key: SeriesKey) -> SeriesStats:
        """Count and ts range of one series."""
        return await asyncio.to_thread(self._stats, key)

    def _stats(self, key: SeriesKey) -> SeriesStats:
        with self._lock:
            sid = self._series_id(key, create=False)
            if sid is None:
                return SeriesStats(0, None, None, 0)
            count, first, last = (
                self._db()
                .execute("SELECT COUNT(*), MIN(ts), MAX(ts) FROM points WHERE series = ?", (sid,))
                .fetchone()
            )
            return SeriesStats(int(count), first, last, self._writes.get(sid, 0))

    async def series(self, service: str | None = None) -> list[SeriesKey]:
        """Stored series (of one service), sorted."""
        with self._lock:
            keys = [k for k in self._series_ids if service is None or k.service == service]
        return sorted(keys, key=lambda k: (k.service, k.metric, k.tenant_id or ""))


def create_telemetry_store(kind: str, data_dir: Path) -> TelemetryStore:
    """The configured store (``HUB_TELEMETRY_STORE``)."""
    if kind == "embedded":
        return EmbeddedTelemetryStore(data_dir / TELEMETRY_FILE)
    raise ValueError(f"unknown telemetry store {kind!r}")
