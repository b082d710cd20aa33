"""Config push latency: a config write reaching a subscribed service, beside the bare store.

Starts two hub processes (replicas A and B) over one embedded store in a temporary
directory, provisions a tenant and subscribes to ``GET /config/{tenant}/watch`` (SSE).
Then it writes ``PATCH /config/{tenant}`` one at a time and measures, for each write, the
time from sending the write to the subscriber holding the event with that content:

* write on A, SSE subscriber on A (same replica: in-process fan-out);
* write on A, SSE subscriber on B (another replica: B's view learns it by its watch);
* write on A, webhook receiver (the hub POSTs the signed change).

Beside them, the same path of the bare store without the hub: a write on one SQLite
connection reaching a watch on another (``put`` → watch event), in this process — the
floor the hub's cross-replica push sits on (its poll interval). ``--backend etcd`` runs
the same against a real one-member etcd (the bare figure is then etcd's own watch).

    python -m bench.config_push [--backend embedded|etcd] [--writes 200] [--pause-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from adapters import Backend, EventType
from adapters.etcd import EtcdBackend
from adapters.sqlite import SQLiteBackend
from bench.common import percentile
from tests.etcd_cluster import EtcdCluster
from tests.http_helpers import Received, WebhookReceiver, serve
from tests.processes import HubProcess

TENANT = "bench_tenant"
TARGET_P99_MS = 100.0


class Arrivals:
    """When each sequence number arrived at a subscriber."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.changed = asyncio.Event()

    def record(self, seq: int) -> None:
        self.times.setdefault(seq, time.perf_counter())
        self.changed.set()

    async def wait(self, seq: int, timeout: float = 10.0) -> float:
        deadline = time.perf_counter() + timeout
        while seq not in self.times:
            self.changed.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"sequence {seq} never arrived")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return self.times[seq]


def seq_of(body: dict[str, object]) -> int | None:
    config = body.get("config")
    if not isinstance(config, dict):
        return None
    value = config.get("rate_limits", {}).get("bench_seq")
    return value if isinstance(value, int) else None


async def follow_sse(
    client: httpx.AsyncClient, url: str, arrivals: Arrivals, ready: asyncio.Event
) -> None:
    async with client.stream("GET", url) as resp:
        resp.raise_for_status()
        ready.set()
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                seq = seq_of(orjson.loads(line[6:]))
                if seq is not None:
                    arrivals.record(seq)


def auth(hub: HubProcess) -> dict[str, str]:
    """Admin authorization for a hub process."""
    return {"authorization": f"Bearer {hub.env['HUB_ADMIN_TOKEN']}"}


def summary(label: str, samples: list[float]) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return (
        f"{label:<48} n={len(samples):<5} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
        f"max {max(samples):7.2f} ms"
    )


async def measure_hub(
    a: HubProcess, b: HubProcess, writes: int, pause: float
) -> dict[str, list[float]]:
    hook_arrivals = Arrivals()

    def on_webhook(got: Received) -> None:
        seq = seq_of(orjson.loads(got.body)["data"])
        if seq is not None and 200 <= got.answered < 300:
            hook_arrivals.record(seq)

    receiver = WebhookReceiver(on_receive=on_webhook)
    async with (
        serve(receiver.app()) as receiver_url,
        httpx.AsyncClient(timeout=30, headers=auth(a)) as client,
    ):
        await client.post(
            f"{a.url}/tenants", json={"tenant_id": TENANT, "subscription_tier": "pro"}
        )
        await client.post(
            f"{a.url}/config/webhooks", json={"url": f"{receiver_url}/hook", "tenant_id": TENANT}
        )
        on_a, on_b = Arrivals(), Arrivals()
        ready_a, ready_b = asyncio.Event(), asyncio.Event()
        readers = [
            asyncio.create_task(
                follow_sse(client, f"{a.url}/config/{TENANT}/watch", on_a, ready_a)
            ),
            asyncio.create_task(
                follow_sse(client, f"{b.url}/config/{TENANT}/watch", on_b, ready_b)
            ),
        ]
        await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 10)
        results: dict[str, list[float]] = {"same": [], "other": [], "webhook": []}
        for seq in range(1, writes + 1):
            start = time.perf_counter()
            resp = await client.patch(
                f"{a.url}/config/{TENANT}", json={"rate_limits": {"bench_seq": seq}}
            )
            resp.raise_for_status()
            results["same"].append((await on_a.wait(seq) - start) * 1000)
            results["other"].append((await on_b.wait(seq) - start) * 1000)
            results["webhook"].append((await hook_arrivals.wait(seq) - start) * 1000)
            await asyncio.sleep(pause)
        for task in readers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return results


async def measure_bare(
    make_backend: Callable[[], Backend], writes: int, pause: float
) -> list[float]:
    writer = make_backend()
    watcher = make_backend()
    await writer.open()
    await watcher.open()
    arrivals = Arrivals()
    start_rev = await watcher.current_revision() + 1

    async def follow() -> None:
        async for event in watcher.watch("bench/", start_revision=start_rev):
            if event.type is EventType.PUT and event.value:
                arrivals.record(int(event.value))

    task = asyncio.create_task(follow())
    samples = []
    try:
        for seq in range(1, writes + 1):
            start = time.perf_counter()
            await writer.put("bench/push", str(seq).encode())
            samples.append((await arrivals.wait(seq) - start) * 1000)
            await asyncio.sleep(pause)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.close()
        await watcher.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--pause-ms", type=float, default=20.0)
    parser.add_argument("--backend", choices=["embedded", "etcd"], default="embedded")
    args = parser.parse_args()
    pause = args.pause_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        token = "bench-admin-" + secrets.token_urlsafe(32)
        env = {"HUB_LOG_LEVEL": "warning", "HUB_ADMIN_TOKEN": token}
        etcd: EtcdCluster | None = None
        make_backend: Callable[[], Backend]
        if args.backend == "etcd":
            etcd = EtcdCluster(work / "etcd", size=1).start()
            endpoints, namespace = etcd.endpoints, f"bench-{uuid.uuid4().hex[:8]}"
            env |= {
                "HUB_BACKEND": "etcd",
                "HUB_ETCD_ENDPOINTS": ",".join(endpoints),
                "HUB_ETCD_NAMESPACE": namespace,
            }

            def make_backend() -> Backend:
                return EtcdBackend(endpoints, namespace=namespace + "-bare")

            setting = "etcd 1 member (its gateway's watch stream)"
        else:
            data = work / "data"
            env |= {"HUB_BACKEND": "embedded", "HUB_DATA_DIR": str(data)}

            def make_backend() -> Backend:
                return SQLiteBackend(data)

            setting = "embedded backend (default 50 ms watch poll across connections)"
        try:
            a = HubProcess(work / "a", env=env).start()
            b = HubProcess(work / "b", env=env).start()
            try:
                hub = asyncio.run(measure_hub(a, b, args.writes, pause))
            finally:
                a.stop()
                b.stop()
            bare = asyncio.run(measure_bare(make_backend, args.writes, pause))
        finally:
            if etcd is not None:
                etcd.stop()
    print(f"config push: {args.writes} sequential writes, {args.pause_ms:g} ms apart, {setting}")
    print(summary("hub: write on A -> SSE subscriber on A", hub["same"]))
    print(summary("hub: write on A -> SSE subscriber on B", hub["other"]))
    print(summary("hub: write on A -> webhook receiver", hub["webhook"]))
    print(summary("bare store: put -> watch event (other conn.)", bare))
    bare_p99 = percentile(bare, 99)
    for label, key in (
        ("same replica", "same"),
        ("other replica", "other"),
        ("webhook", "webhook"),
    ):
        p99 = percentile(hub[key], 99)
        verdict = "meets" if p99 < TARGET_P99_MS else "MISSES"
        print(
            f"{'ratio p99 hub ' + label + ' / bare':<48} {p99 / bare_p99:7.2f}x   "
            f"{verdict} the p99 < {TARGET_P99_MS:g} ms target"
        )


if __name__ == "__main__":
    main()
