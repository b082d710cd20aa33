"""Benchmark: two hub replicas on one real etcd, beside etcd's own gateway.

Prints, from one run on this machine (everything on 127.0.0.1):

* propagation delay: ``POST /services/register`` on replica A until the instance is in
  replica B's answer (p50/p99), beside etcd itself: a gateway put until a gateway range
  read on another connection returns it;
* discovery throughput and latency: wrk (a separate process, same connections and
  duration) against ``GET /services/discover/{name}`` on the hub and against etcd's
  gateway range read (``POST /v3/kv/range``) of the same service's catalog prefix, with
  the hub/etcd ratios.

    python -m bench.etcd_propagation [--registrations 200] [--connections 1 16] [--seconds 10]

It starts and stops its own etcd member and hub processes (by PID).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile, run_wrk
from tests.etcd_cluster import EtcdCluster
from tests.processes import ADMIN_HEADERS, HubProcess

SERVICE = "bench"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def registration(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port}


def describe(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<44} n={len(ms):<5} p50 {percentile(ms, 50):7.3f} ms  "
        f"p99 {percentile(ms, 99):7.3f} ms  max {max(ms):7.3f} ms"
    )


async def hub_propagation(
    http: httpx.AsyncClient, a: str, b: str, count: int
) -> tuple[list[float], int]:
    """Register on A, then read B until the instance is there; the whole span each time.

    Also returns how often B already had it at the first read after A answered (then
    the span is A's write round trip plus one read, an upper bound on propagation).
    """
    delays: list[float] = []
    first_read_hits = 0
    for i in range(count):
        started = time.perf_counter()
        answer = await http.post(
            f"{a}/services/register", json=registration("propagation", 20000 + i)
        )
        answer.raise_for_status()
        wanted = answer.json()["instance_id"]
        for reads in range(1, 100_001):
            seen = await http.get(f"{b}/services/propagation")
            if seen.status_code == 200 and any(
                e["instance_id"] == wanted for e in seen.json()["instances"]
            ):
                first_read_hits += reads == 1
                break
        else:
            raise RuntimeError(f"{wanted} never reached replica B")
        delays.append(time.perf_counter() - started)
    return delays, first_read_hits


async def etcd_propagation(
    writer: httpx.AsyncClient, reader: httpx.AsyncClient, gateway: str, prefix: str, count: int
) -> list[float]:
    """A gateway put, then gateway range reads on another connection until it is there."""
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


async def propagation(a: str, b: str, gateway: str, namespace: str, count: int) -> None:
    async with httpx.AsyncClient(timeout=10, headers=ADMIN_HEADERS) as hub_http:
        hub_delays, first_read_hits = await hub_propagation(hub_http, a, b, count)
    async with httpx.AsyncClient(timeout=10) as http, httpx.AsyncClient(timeout=10) as other:
        etcd_delays = await etcd_propagation(http, other, gateway, f"/{namespace}/raw/", count)
    print(describe("hub: register on A -> visible on B", hub_delays))
    print(describe("etcd: gateway put -> gateway range", etcd_delays))
    p50 = percentile(hub_delays, 50) / percentile(etcd_delays, 50)
    p99 = percentile(hub_delays, 99) / percentile(etcd_delays, 99)
    print(f"{'ratio hub / etcd':<44} p50 {p50:.2f}x  p99 {p99:.2f}x")
    print(
        f"B already had the instance at its first read after A answered in "
        f"{first_read_hits} of {count} registrations (the span is then A's write + one read)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        etcd = EtcdCluster(work / "etcd", size=1).start()
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        env = {
            "HUB_BACKEND": "etcd",
            "HUB_ETCD_ENDPOINTS": ",".join(etcd.endpoints),
            "HUB_ETCD_NAMESPACE": namespace,
            "HUB_LOG_LEVEL": "warning",
            "HUB_RATE_LIMIT_PER_TOKEN": "1000000",
        }
        hubs = [HubProcess(work / name, env=env) for name in ("a", "b")]
        try:
            for hub in hubs:
                hub.start()
            a, b = (hub.url for hub in hubs)
            gateway = etcd.endpoints[0]
            with httpx.Client(timeout=10, headers=ADMIN_HEADERS) as client:
                for n in range(args.instances):
                    client.post(
                        f"{a}/services/register", json=registration(SERVICE, 10_000 + n)
                    ).raise_for_status()
            print("etcd 3.5.1, 1 member; 2 hub replicas (A, B) on it; all on 127.0.0.1")
            print(f"\n== propagation, {args.registrations} registrations one after another ==")
            asyncio.run(propagation(a, b, gateway, namespace, args.registrations))

            prefix = f"/{namespace}/catalog/{SERVICE}/"
            range_body = json.dumps(
                {"key": _b64(prefix), "range_end": _b64(prefix[:-1] + chr(ord(prefix[-1]) + 1))}
            )
            hub_path = [f"/services/discover/{SERVICE}"]
            print(f"\n== discovery of one service with {args.instances} instances, wrk ==")
            run_wrk("warm-up", b, hub_path, connections=4, seconds=2, headers=ADMIN_HEADERS)
            run_wrk(
                "warm-up", gateway, ["/v3/kv/range"], connections=4, seconds=2, json_body=range_body
            )
            for conns in args.connections:
                hub_run = run_wrk(
                    f"hub GET /services/discover/{SERVICE}, c={conns}",
                    b,
                    hub_path,
                    connections=conns,
                    seconds=args.seconds,
                    headers=ADMIN_HEADERS,
                )
                etcd_run = run_wrk(
                    f"etcd POST /v3/kv/range (same prefix), c={conns}",
                    gateway,
                    ["/v3/kv/range"],
                    connections=conns,
                    seconds=args.seconds,
                    json_body=range_body,
                )
                print(hub_run.line())
                print(etcd_run.line())
                print(
                    f"{'ratio hub / etcd':<44} throughput {hub_run.rps / etcd_run.rps:.2f}x  "
                    f"p50 {hub_run.p50_ms / etcd_run.p50_ms:.2f}x  "
                    f"p99 {hub_run.p99_ms / etcd_run.p99_ms:.2f}x"
                )
        finally:
            for hub in hubs:
                hub.stop()
            etcd.stop()


if __name__ == "__main__":
    main()
