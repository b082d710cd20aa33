"""Discovery latency and throughput of a hub process, beside the bare embedded store.

Starts the hub as a separate process (embedded backend in a temporary directory),
registers 100 services with 3 instances each, then drives
``GET /services/discover/{name}`` from wrk (another process) at fixed concurrency,
rotating over all services. Beside it, the same reads of the bare store: a range read
of the service's catalog prefix on the SQLite backend, in-process (no HTTP) — the work
the hub's in-memory view saves on every discovery.

    python -m bench.discovery [--connections 1 4 16] [--seconds 10]   (from the repo root)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from adapters.sqlite import SQLiteBackend
from bench.common import LoadResult, percentile, run_wrk
from tests.processes import ADMIN_HEADERS, HubProcess

SERVICES = 100
INSTANCES = 3


async def bare_store_reads(data_dir: Path, seconds: float, concurrency: int) -> LoadResult:
    """Range reads of each service's catalog prefix straight from the SQLite file."""
    backend = SQLiteBackend(data_dir)
    await backend.open()
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            snap = await backend.range(f"catalog/svc-{i % SERVICES:03d}/")
            latencies.append((time.perf_counter() - start) * 1000)
            assert len(snap.items) == INSTANCES
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    await backend.close()
    return LoadResult(
        label=f"bare SQLite range read, c={concurrency}",
        requests=len(latencies),
        seconds=elapsed,
        errors=0,
        non2xx=0,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        hub = HubProcess(
            Path(tmp),
            args=["--data-dir", str(data)],
            env={"HUB_LOG_LEVEL": "warning", "HUB_RATE_LIMIT_PER_TOKEN": "1000000"},
        )
        hub.start()
        try:
            with httpx.Client(base_url=hub.url, timeout=10, headers=ADMIN_HEADERS) as client:
                for s in range(SERVICES):
                    for n in range(INSTANCES):
                        resp = client.post(
                            "/services/register",
                            json={
                                "name": f"svc-{s:03d}",
                                "host": "127.0.0.1",
                                "port": 10_000 + s * INSTANCES + n,
                                "weight": n + 1,
                            },
                        )
                        resp.raise_for_status()
            paths = [f"/services/discover/svc-{s:03d}" for s in range(SERVICES)]
            print(f"hub: embedded backend, {SERVICES} services x {INSTANCES} instances")
            print("load: wrk, 1 thread, keep-alive connections, rotating over every service")
            run_wrk("warm-up", hub.url, paths, connections=4, seconds=2, headers=ADMIN_HEADERS)
            for conns in args.connections:
                result = run_wrk(
                    f"hub GET /services/discover/{{name}}, c={conns}",
                    hub.url,
                    paths,
                    connections=conns,
                    seconds=args.seconds,
                    headers=ADMIN_HEADERS,
                )
                print(result.line())
                bare = asyncio.run(bare_store_reads(data, args.seconds, conns))
                print(bare.line())
                print(
                    f"{'ratio hub p50 / bare p50':<44} {result.p50_ms / bare.p50_ms:9.2f}x  "
                    f"(hub answers over HTTP with tier check and selection)"
                )
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
