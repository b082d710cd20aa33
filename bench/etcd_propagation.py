"""Benchmark: two hub replicas on one real etcd, beside etcd's own gateway.

Prints, from one run on this machine (everything on 127.0.0.1):

* propagation delay: ``POST /services/register`` on replica A until the instance is in
  replica B's discovery answer (p50/p99), beside etcd itself: a gateway put until a
  gateway range read on another connection returns it;
* discovery throughput and latency: the same load loop and concurrency against
  ``GET /services/discover/{name}`` on the hub and against etcd's gateway range read of
  the same service prefix, with the hub/etcd ratio.

Run: ``.venv/bin/python bench/etcd_propagation.py [--registrations N] [--requests N]
[--concurrency N]``. It starts and stops its own etcd member and hub processes (by PID).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

# The fixtures that start real etcd members and hub processes live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.etcd_cluster import EtcdCluster
from tests.integration.hub_process import HubProcess, registration

SERVICE = "bench"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<34} n={len(ms):<6} p50={percentile(ms, 0.5):8.3f} ms "
        f"p99={percentile(ms, 0.99):8.3f} ms  max={max(ms):8.3f} ms"
    )


async def hub_propagation(http: httpx.AsyncClient, a: str, b: str, count: int) -> list[float]:
    delays: list[float] = []
    for i in range(count):
        body = registration("propagation", 20000 + i)
        started = time.perf_counter()
        answer = await http.post(f"{a}/services/register", json=body)
        answer.raise_for_status()
        wanted = answer.json()["instance_id"]
        for _ in range(100_000):
            seen = await http.get(f"{b}/services/propagation")
            if seen.status_code == 200 and any(
                e["instance_id"] == wanted for e in seen.json()["instances"]
            ):
                break
        else:
            raise RuntimeError(f"{wanted} never reached replica B")
        delays.append(time.perf_counter() - started)
    return delays


async def etcd_propagation(
    writer: httpx.AsyncClient, reader: httpx.AsyncClient, gateway: str, prefix: str, count: int
) -> list[float]:
    delays: list[float] = []
    for i in range(count):
        key = _b64(f"{prefix}propagation/{i}")
        started = time.perf_counter()
        put = await writer.post(f"{gateway}/v3/kv/put", json={"key": key, "value": _b64("x")})
        put.raise_for_status()
        for _ in range(100_000):
            got = await reader.post(f"{gateway}/v3/kv/range", json={"key": key})
            if got.json().get("kvs"):
                break
        else:
            raise RuntimeError("an etcd put never became readable")
        delays.append(time.perf_counter() - started)
    return delays


async def load(
    request: Callable[[], Awaitable[httpx.Response]], total: int, concurrency: int
) -> tuple[float, list[float]]:
    """``total`` requests from ``concurrency`` loops; (requests/s, latencies)."""
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            answer = await request()
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    etcd = EtcdCluster(work / "etcd", size=1).start()
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    hubs = [
        HubProcess(work, etcd_endpoints=etcd.endpoints, namespace=namespace, name=name)
        for name in ("a", "b")
    ]
    try:
        for hub in hubs:
            hub.start()
        a, b = (hub.url for hub in hubs)
        gateway = etcd.endpoints[0]
        limits = httpx.Limits(max_connections=args.concurrency + 4)
        async with (
            httpx.AsyncClient(timeout=10, limits=limits) as http,
            httpx.AsyncClient(timeout=10, limits=limits) as other,
        ):
            for i in range(args.instances):
                answer = await http.post(
                    f"{a}/services/register", json=registration(SERVICE, 10000 + i)
                )
                answer.raise_for_status()
            print(f"etcd 3.5 (1 member) + 2 hub replicas on 127.0.0.1, namespace {namespace}")
            print("\n== propagation: register on A -> visible on B ==")
            hub_delays = await hub_propagation(http, a, b, args.registrations)
            etcd_delays = await etcd_propagation(
                http, other, gateway, f"/{namespace}/bench-raw/", args.registrations
            )
            print(describe("hub A -> hub B", hub_delays))
            print(describe("etcd gateway put -> range", etcd_delays))
            p50_ratio = statistics.median(hub_delays) / statistics.median(etcd_delays)
            p99_ratio = percentile(hub_delays, 0.99) / percentile(etcd_delays, 0.99)
            print(f"ratio hub/etcd p50 {p50_ratio:.2f}, p99 {p99_ratio:.2f}")

            print(
                f"\n== discovery of one service ({args.instances} instances): "
                f"{args.requests} requests, concurrency {args.concurrency} =="
            )
            prefix = f"/{namespace}/catalog/{SERVICE}/"
            range_body = {
                "key": _b64(prefix),
                "range_end": _b64(prefix[:-1] + chr(ord(prefix[-1]) + 1)),
            }

            def hub_request() -> Awaitable[httpx.Response]:
                return http.get(f"{b}/services/discover/{SERVICE}")

            def etcd_request() -> Awaitable[httpx.Response]:
                return http.post(f"{gateway}/v3/kv/range", json=range_body)

            await load(hub_request, 200, args.concurrency)  # warm-up
            await load(etcd_request, 200, args.concurrency)
            hub_rate, hub_lat = await load(hub_request, args.requests, args.concurrency)
            etcd_rate, etcd_lat = await load(etcd_request, args.requests, args.concurrency)
            print(describe(f"hub discover ({hub_rate:,.0f} req/s)", hub_lat))
            print(describe(f"etcd gateway range ({etcd_rate:,.0f} req/s)", etcd_lat))
            print(
                f"ratio hub/etcd throughput {hub_rate / etcd_rate:.2f}, "
                f"p50 latency {statistics.median(hub_lat) / statistics.median(etcd_lat):.2f}"
            )
            print(
                "(one load process on the same 2-core machine as etcd and the hubs: "
                "figures include the client's own cost)"
            )
    finally:
        for hub in hubs:
            hub.stop()
        etcd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
