"""Registration latency before and after 1,000,000 audited writes (issue 11, item 14).

Starts the hub as a separate process (embedded backend in a temporary directory) with the
default audit retention, measures ``POST /services/register`` latency (each one audited),
then loads 1,000,000 audit records straight into the same store through the audit storage
API (``Backend.append_audit``, in batches, from this process), and measures registration
again. Also shows what reading the audit log and one retention pass cost at that size.

    python -m bench.audit_growth [--records 1000000] [--registrations 2000]   (from repo root)
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

import httpx

from adapters import AuditQuery
from adapters.sqlite import SQLiteBackend
from bench.common import percentile
from facade.access.audit import AuditLog, audit_id
from tests.processes import HubProcess

LOAD_BATCH = 5000


def register_latencies(client: httpx.Client, count: int, offset: int) -> list[float]:
    """Milliseconds of ``count`` sequential registrations (each audited by the hub)."""
    latencies = []
    for i in range(count):
        body = {"name": f"svc-{i % 50}", "host": "127.0.0.1", "port": 10_000 + offset + i}
        started = time.perf_counter()
        resp = client.post("/services/register", json=body)
        latencies.append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 201, resp.text
    return latencies


def read_latencies(client: httpx.Client, params: dict[str, str], count: int = 50) -> list[float]:
    """Milliseconds of ``count`` ``GET /audit`` calls."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        resp = client.get("/audit", params=params)
        latencies.append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 200, resp.text
    return latencies


def line(label: str, latencies: list[float]) -> str:
    """One printable row of percentiles."""
    return (
        f"{label:<48} n={len(latencies):<6} p50 {percentile(latencies, 50):7.3f} ms  "
        f"p99 {percentile(latencies, 99):7.3f} ms  max {max(latencies):7.3f} ms"
    )


async def load_audit(data_dir: Path, records: int) -> float:
    """Append ``records`` audit records through the storage API; return the seconds taken."""
    backend = SQLiteBackend(data_dir)
    await backend.open()
    started = time.perf_counter()
    now_ns = time.time_ns()
    try:
        for first in range(0, records, LOAD_BATCH):
            batch = [
                {
                    # Spread over the last day, oldest first, all inside the retention.
                    "id": audit_id(now_ns - (records - i) * 86_000_000),
                    "at": "2026-01-01T00:00:00.000000Z",
                    "token_id": f"{i % 97:032x}",
                    "role": "service",
                    "tenant_id": f"tenant-{i % 500}",
                    "action": "POST /services/register",
                    "path": "/services/register",
                    "status": 201,
                    "outcome": "ok",
                    "correlation_id": None,
                }
                for i in range(first, min(first + LOAD_BATCH, records))
            ]
            await backend.append_audit(batch)
    finally:
        await backend.close()
    return time.perf_counter() - started


async def retention_pass(data_dir: Path, max_records: int) -> tuple[int, float]:
    """One retention pass with the default settings; (records deleted, seconds)."""
    backend = SQLiteBackend(data_dir)
    await backend.open()
    try:
        started = time.perf_counter()
        deleted = await AuditLog(backend, max_records=max_records).trim()
        elapsed = time.perf_counter() - started
        assert len(await backend.query_audit(AuditQuery(limit=5))) == 5
    finally:
        await backend.close()
    return deleted, elapsed


def audit_rows(data_dir: Path) -> int:
    """How many audit records the store holds."""
    with sqlite3.connect(data_dir / "hub.sqlite3") as conn:
        return int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--registrations", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hub-bench-audit-") as tmp:
        data = Path(tmp) / "data"
        hub = HubProcess(
            Path(tmp), args=["--data-dir", str(data)], env={"HUB_LOG_LEVEL": "warning"}
        )
        hub.start()
        try:
            with hub.client() as client:
                register_latencies(client, 200, offset=0)  # warm-up
                before = register_latencies(client, args.registrations, offset=1000)
                print(line(f"register, {audit_rows(data):,} audit records", before))
                seconds = asyncio.run(load_audit(data, args.records))
                print(
                    f"loaded {args.records:,} audit records in {seconds:.1f} s "
                    f"({args.records / seconds:,.0f} records/s, batches of {LOAD_BATCH})"
                )
                after = register_latencies(client, args.registrations, offset=50_000)
                print(line(f"register, {audit_rows(data):,} audit records", after))
                print(line("GET /audit?limit=100", read_latencies(client, {"limit": "100"})))
                print(
                    line(
                        "GET /audit?tenant_id=tenant-7&limit=100",
                        read_latencies(client, {"tenant_id": "tenant-7", "limit": "100"}),
                    )
                )
                keys = len(client.get("/services/").json()["services"])
                print(f"services in the view: {keys} (audit records never enter it)")
                ratio50 = percentile(after, 50) / percentile(before, 50)
                ratio99 = percentile(after, 99) / percentile(before, 99)
                print(f"after/before: p50 x{ratio50:.2f}, p99 x{ratio99:.2f}")
        finally:
            hub.stop()
        deleted, elapsed = asyncio.run(retention_pass(data, max_records=1_000_000))
        print(
            f"retention pass (30 days / 1,000,000 records): deleted {deleted:,} "
            f"in {elapsed:.2f} s; {audit_rows(data):,} left"
        )


if __name__ == "__main__":
    main()
