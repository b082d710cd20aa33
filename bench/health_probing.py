"""Active health probing at scale: 1,000 instances probed every 5 s.

Three processes, all on 127.0.0.1:

* a **fleet** process (this module with ``--serve``): one asyncio HTTP server listening
  on 1,000 ports, each answering ``GET /health`` with 200; told over stdin to take a
  port down (close its listener: connection refused);
* a **hub** process (``central-hub run``, embedded backend in a temporary directory,
  probing on): it is elected prober leader and probes every instance;
* this **driver**: registers 100 services x 10 instances with an HTTP check every 5 s,
  lets probing run, then reads the prober's own figures from ``GET /health`` and takes
  instances down, polling ``GET /services/discover/{name}`` until each leaves discovery.

Printed, no assertions:

* how far probes start behind their schedule (p50 / p99 / max, ms), probes run against
  the number the schedule asks for, probes skipped because the previous one still ran,
  health writes to the backend, and the hub's CPU use while probing;
* the time from an instance going down to it being gone from discovery (``critical``),
  beside the bound the check implies: ``failures_before_critical`` consecutive failures
  at ``interval`` spacing, the first of them up to one interval after the failure.

    python -m bench.health_probing [--instances 1000] [--interval 5] [--measure 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.processes import ADMIN_HEADERS, HubProcess

INSTANCES_PER_SERVICE = 10
DOWN_SAMPLES = 8

# -- the fleet: many ports, one process ------------------------------------------------


async def serve_fleet(count: int) -> None:
    """Listen on ``count`` loopback ports; print them; obey ``down <port>`` on stdin."""
    body = b'{"status": "ok"}'
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if not await reader.readline():
                    return
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                writer.write(response)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    servers: dict[int, asyncio.Server] = {}
    connections: dict[int, set[asyncio.StreamWriter]] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        connections.setdefault(port, set()).add(writer)
        try:
            await handle(reader, writer)
        finally:
            connections.get(port, set()).discard(writer)

    for _ in range(count):
        server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=64)
        servers[server.sockets[0].getsockname()[1]] = server
    print(json.dumps(sorted(servers)), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command, _, port = line.decode().partition(" ")
        if command == "down" and int(port) in servers:
            # Like a process dying: no listener, and its open connections are gone too.
            servers.pop(int(port)).close()
            for writer in connections.pop(int(port), set()):
                writer.transport.abort()
            print(f"down {int(port)}", flush=True)


# -- the driver ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def register_all(
    client: httpx.AsyncClient, ports: list[int], check: dict[str, Any]
) -> dict[int, str]:
    """Register every port; return port -> service name."""
    services: dict[int, str] = {}
    semaphore = asyncio.Semaphore(16)

    async def one(index: int, port: int) -> None:
        name = f"svc-{index // INSTANCES_PER_SERVICE:03d}"
        body = {"name": name, "host": "127.0.0.1", "port": port, "check": check}
        async with semaphore:
            response = await client.post("/services/register", json=body)
        response.raise_for_status()
        services[port] = name

    await asyncio.gather(*(one(i, p) for i, p in enumerate(ports)))
    return services


async def time_to_leave_discovery(
    client: httpx.AsyncClient, fleet: subprocess.Popen[str], port: int, service: str
) -> float:
    """Take ``port`` down; seconds until discovery stops offering it."""
    url = f"http://127.0.0.1:{port}"
    assert fleet.stdin is not None
    fleet.stdin.write(f"down {port}\n")
    fleet.stdin.flush()
    started = time.monotonic()
    deadline = started + 120
    while time.monotonic() < deadline:
        answer = (await client.get(f"/services/discover/{service}")).json()
        if url not in answer["all_healthy_endpoints"]:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return float("nan")


async def drive(
    args: argparse.Namespace, fleet: subprocess.Popen[str], hub: HubProcess, ports: list[int]
) -> None:
    """Register, let probing run, print its figures, then time instances leaving."""
    check = {
        "interval": args.interval,
        "timeout": 2.0,
        "failures_before_critical": args.failures,
        "successes_before_passing": 2,
    }
    assert hub.proc is not None
    async with httpx.AsyncClient(base_url=hub.url, headers=ADMIN_HEADERS, timeout=120) as client:
        started = time.monotonic()
        services = await register_all(client, ports, check)
        print(
            f"registered {len(services)} instances in {len(set(services.values()))} "
            f"services in {time.monotonic() - started:.1f}s"
        )
        await asyncio.sleep(2 * args.interval)  # first probes are spread over 1 interval
        before = (await client.get("/health")).json()["prober"]
        cpu_before, wall_before = cpu_seconds(hub.proc.pid), time.monotonic()
        await asyncio.sleep(args.measure)
        after = (await client.get("/health")).json()["prober"]
        cpu = cpu_seconds(hub.proc.pid) - cpu_before
        wall = time.monotonic() - wall_before

        expected = len(ports) * wall / args.interval
        probes = after["probes"] - before["probes"]
        print(
            f"\n== probing {len(ports)} instances every {args.interval:g}s "
            f"(concurrency {args.concurrency}), measured over {wall:.1f}s =="
        )
        print(f"leader: {after['identity']}  targets: {after['targets']}")
        print(f"probes run: {probes} of {expected:.0f} scheduled ({probes / expected:.1%})")
        print(f"failed probes: {after['failures'] - before['failures']}")
        print(
            "skipped (previous probe still running): "
            f"{after['skipped_still_running'] - before['skipped_still_running']}"
        )
        lag = after["lag_ms"]
        print(
            f"start lag behind schedule (last 10,000 probes, ms): p50 {lag['p50']}  "
            f"p99 {lag['p99']}  max {lag['max']:.1f}"
        )
        writes = after["writes"] - before["writes"]
        print(
            f"health writes to the backend: {writes} ({writes / wall:.1f}/s; "
            f"one per probe would be {probes / wall:.0f}/s)"
        )
        print(f"hub CPU while probing: {cpu / wall:.1%} of one core")

        victims = ports[:: max(1, len(ports) // DOWN_SAMPLES)][:DOWN_SAMPLES]
        durations = await asyncio.gather(
            *(time_to_leave_discovery(client, fleet, p, services[p]) for p in victims)
        )
        bound_low = (args.failures - 1) * args.interval
        bound_high = args.failures * args.interval
        print(f"\n== down -> critical in discovery ({len(victims)} instances) ==")
        print("seconds: " + ", ".join(f"{d:.2f}" for d in sorted(durations)))
        print(
            f"expected from the check: between {bound_low:g}s and {bound_high:g}s "
            f"({args.failures} failures {args.interval:g}s apart, plus probe timing)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--failures", type=int, default=3, help="failures_before_critical")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--measure", type=float, default=60.0, help="seconds of steady probing")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_fleet(args.serve))
        return
    fleet = subprocess.Popen(
        [sys.executable, "-m", "bench.health_probing", "--serve", str(args.instances)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-health-"))
    hub = HubProcess(
        workdir,
        args=["--data-dir", str(workdir / "data")],
        env={
            "HUB_PROBING": "true",
            "HUB_LOG_LEVEL": "warning",
            "HUB_PROBE_CONCURRENCY": str(args.concurrency),
            "HUB_RATE_LIMIT_PER_TOKEN": "1000000",
            "HUB_RATE_LIMIT_BURST": "1000000",
        },
    )
    try:
        assert fleet.stdout is not None
        ports: list[int] = json.loads(fleet.stdout.readline())
        hub.start()
        asyncio.run(drive(args, fleet, hub, ports))
    finally:
        hub.stop()
        if fleet.poll() is None:
            fleet.kill()
        fleet.wait(10)


if __name__ == "__main__":
    main()
