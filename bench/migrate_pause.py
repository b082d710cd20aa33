"""How long ``central-hub migrate`` pauses writes (issue 14), and what a writer sees.

Starts a hub process on a fresh embedded store, provisions ``--tenants`` tenants with one
config write each, then runs ``migrate --to embedded --settle 0`` into a fresh store
``--runs`` times while a writer thread creates tenants one after another. Prints, per
run, the pause ``migrate`` measured, the writer's refused (``503 read_only``) and
accepted writes, and the p50/p99 latency of the writer's answers. Asserts nothing.

    python -m bench.migrate_pause [--tenants 500] [--runs 3]   (from the repo root)
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.processes import HubProcess

PAUSE = re.compile(r"writes were paused for ([0-9.]+) s")


def writer(hub: HubProcess, stop: threading.Event, tag: str, out: list[tuple[int, float]]) -> None:
    """Create tenants until ``stop``; record (status, seconds) per answer (bounded)."""
    with hub.client() as client:
        for n in range(100_000):
            if stop.is_set():
                return
            began = time.perf_counter()
            resp = client.post(
                "/tenants", json={"tenant_id": f"{tag}-{n}", "subscription_tier": "free"}
            )
            out.append((resp.status_code, time.perf_counter() - began))


def main() -> None:
    """Fill, migrate ``--runs`` times under a writer, print figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    hub = HubProcess(work, args=["--data-dir", str(work / "source")]).start()
    try:
        with hub.client() as client:
            for n in range(opts.tenants):
                client.post("/tenants", json={"tenant_id": f"t-{n}", "subscription_tier": "pro"})
                client.put(f"/config/t-{n}", json={"features": {"a": True}})
            revision = client.get("/health").json()["view"]["revision"]
        print(f"source: {opts.tenants} tenants with a config each, revision {revision}")
        assert hub.admin_token is not None
        (work / "token").write_text(hub.admin_token)
        for run in range(opts.runs):
            answers: list[tuple[int, float]] = []
            stop = threading.Event()
            thread = threading.Thread(target=writer, args=(hub, stop, f"w{run}", answers))
            thread.start()
            time.sleep(0.2)
            done = subprocess.run(
                [sys.executable, "-m", "facade.cli.main", "migrate", "--to", "embedded",
                 "--data-dir", str(work / f"target-{run}"), "--url", hub.url,
                 "--token-file", str(work / "token"), "--settle", "0"],
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            time.sleep(0.2)
            stop.set()
            thread.join(60)
            found = PAUSE.search(done.stderr)
            pause = float(found.group(1)) if found else float("nan")
            refused = sum(1 for status, _ in answers if status == 503)
            accepted = sum(1 for status, _ in answers if status == 201)
            latencies = sorted(seconds for _, seconds in answers)
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
            print(
                f"run {run + 1}: exit {done.returncode}, writes paused {pause:.3f} s; writer: "
                f"{accepted} accepted, {refused} refused (read_only), answer p50 {p50:.1f} ms "
                f"p99 {p99:.1f} ms"
            )
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
