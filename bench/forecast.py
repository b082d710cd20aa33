"""Predictive scaling on real load traces, through a real hub process (issue 16).

    python -m bench.forecast [--traces nyc_taxi.csv ...] [--no-library]

For each trace in ``bench/data/load-traces/`` (NAB, MIT licence): register a service, replay
the trace into the hub with ``POST /telemetry`` as that service's ``requests``, and at 40
cut-offs from 60 % of the trace to its end (the hub holding only the points before the
cut-off) ask ``POST /services/scale/predict`` for the next 12 steps. Prints, per trace and
averaged: MAE of the hub, of the last value, of the same time one day earlier (seasonal
naive), the ratio hub / best naive, and how often the actual value fell inside the 80 %
interval — for the answer once the background refit that the new points started is done
(the fitted model's accuracy) and for the immediate answer (the cached model, updated
with the new points, while the refit runs). Then the latency of a prediction on a
4,000-point history after the first fit, one new point before each call (refits in the
background).

    python -m bench.forecast --latency-only    # only that latency figure
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile
from bench.forecast_traces import (
    HORIZON,
    TRACES,
    Score,
    cutoffs,
    load_trace,
    print_table,
    seasonal_lag,
)
from tests.processes import HubProcess

BATCH = 10_000


def post_range(
    client: httpx.Client, service: str, ts: list[float], values: list[float], lo: int, hi: int
) -> None:
    """Replay points [lo, hi) of a trace in batches of at most 10,000."""
    for start in range(lo, hi, BATCH):
        end = min(hi, start + BATCH)
        points = [{"ts": ts[i], "value": values[i]} for i in range(start, end)]
        resp = client.post(
            "/telemetry", json={"service": service, "metric": "requests", "points": points}
        )
        resp.raise_for_status()


def register(client: httpx.Client, service: str) -> None:
    """Two instances, so the service has redundancy."""
    for n in range(2):
        client.post(
            "/services/register",
            json={
                "name": service,
                "host": "127.0.0.1",
                "port": 9000 + n,
                "protocol": "tcp",
                "instance_id": f"{service}-{n}",
            },
        ).raise_for_status()


def ask_until_settled(
    client: httpx.Client, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """The immediate answer, and the answer once the background refit it started (if
    any) has replaced the model; the time until then. The settled answer comes from the
    model the hub used to fit inside the request before refits moved to the background."""
    started = time.perf_counter()
    resp = client.post("/services/scale/predict", json=body)
    resp.raise_for_status()
    first = settled = resp.json()
    while settled["model"]["fit_age"]["refitting"]:
        time.sleep(0.02)
        resp = client.post("/services/scale/predict", json=body)
        resp.raise_for_status()
        settled = resp.json()
    return first, settled, time.perf_counter() - started


def replay(client: httpx.Client, trace: str, index: int) -> tuple[Score, Score]:
    """Rolling-origin evaluation of one trace through the hub: (settled, immediate)."""
    ts, values = load_trace(trace)
    service = f"trace-{index}"
    register(client, service)
    lag = seasonal_lag(ts)
    step = statistics.median(b - a for a, b in pairwise(ts))
    settled_score, immediate_score = Score(trace), Score(trace)
    sent = 0
    for cut in cutoffs(len(values)):
        post_range(client, service, ts, values, sent, cut)
        sent = cut
        first, settled, seconds = ask_until_settled(
            client,
            {
                "service_name": service,
                "horizon_seconds": HORIZON * step,
                "capacity_per_instance": max(values) / 4,
            },
        )
        settled_score.seconds.append(seconds)
        for score, body in ((settled_score, settled), (immediate_score, first)):
            forecast: list[dict[str, float]] = body["forecast"]
            score.add(
                values[cut : cut + HORIZON],
                [p["value"] for p in forecast],
                [p["lower"] for p in forecast],
                [p["upper"] for p in forecast],
                values[:cut],
                lag,
                body["model"]["name"],
            )
    return settled_score, immediate_score


def cached_latency(client: httpx.Client, calls: int = 400) -> dict[str, float]:
    """Predictions on a 4,000-point history after the first fit, one new point before
    each: refits (every ``HUB_FORECAST_REFIT_POINTS``) run in the background meanwhile."""
    ts, values = load_trace("ec2_cpu_utilization_5f5533.csv")
    service = "latency-probe"
    register(client, service)
    first = 4_000 - calls
    post_range(client, service, ts, values, 0, first)
    body = {"service_name": service, "horizon_seconds": 3600, "capacity_per_instance": 50}
    started = time.perf_counter()
    client.post("/services/scale/predict", json=body).raise_for_status()
    first_fit = time.perf_counter() - started
    samples = []
    refitting = 0
    oldest = 0
    for i in range(first, first + calls):
        post_range(client, service, ts, values, i, i + 1)
        started = time.perf_counter()
        resp = client.post("/services/scale/predict", json=body)
        samples.append(time.perf_counter() - started)
        resp.raise_for_status()
        age = resp.json()["model"]["fit_age"]
        refitting += bool(age["refitting"])
        oldest = max(oldest, age["points_since_fit"])
    return {
        "first_fit": first_fit,
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "n": len(samples),
        "refitting": refitting,
        "oldest": oldest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", nargs="*", default=list(TRACES))
    parser.add_argument("--no-library", action="store_true", help="naive candidates only")
    parser.add_argument("--latency-only", action="store_true", help="skip the trace replays")
    args = parser.parse_args()
    env = {"HUB_LOG_LEVEL": "warning"}
    if args.no_library:
        env["HUB_FORECAST_LIBRARY"] = "false"
    with tempfile.TemporaryDirectory(prefix="hub-bench-forecast-") as tmp:
        hub = HubProcess(Path(tmp), args=["--data-dir", str(Path(tmp) / "data")], env=env)
        hub.start()
        try:
            with hub.client() as client:
                client.timeout = httpx.Timeout(600.0)  # a first fit may take seconds
                traces = [] if args.latency_only else args.traces
                pairs = [replay(client, trace, n) for n, trace in enumerate(traces)]
                if pairs:
                    print("Answers once the background refit is done (the fitted model's):")
                    print_table([settled for settled, _ in pairs])
                    print()
                    print("Immediate answers (the cached model while the refit runs):")
                    print_table([immediate for _, immediate in pairs])
                    print()
                for settled, _ in pairs:
                    print(
                        f"- {settled.name}: predict until the refit is done p50 "
                        f"{1000 * percentile(settled.seconds, 50):.0f} ms, max "
                        f"{1000 * max(settled.seconds):.0f} ms"
                    )
                lat = cached_latency(client)
                print(
                    f"- 4,000-point history: first fit {1000 * lat['first_fit']:.0f} ms; then "
                    f"{lat['n']:.0f} predictions, one new point before each (refits in the "
                    f"background: {lat['refitting']:.0f} answers while one ran, fits up to "
                    f"{lat['oldest']:.0f} points old): p50 {1000 * lat['p50']:.1f} ms, "
                    f"p99 {1000 * lat['p99']:.1f} ms, max {1000 * lat['max']:.1f} ms"
                )
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
