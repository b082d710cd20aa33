"""Load traces and the rolling-origin scoring that bench/forecast.py and
bench/forecast_libraries.py share (stdlib only).

Traces: ``bench/data/load-traces/`` (NAB, MIT licence: LICENSE-NAB.txt there).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

TRACES_DIR = Path(__file__).parent / "data" / "load-traces"
TRACES = (
    "nyc_taxi.csv",
    "Twitter_volume_AAPL.csv",
    "ec2_cpu_utilization_5f5533.csv",
    "ec2_network_in_5abac7.csv",
)
CUTOFFS = 40
HORIZON = 12
DAY = 86_400


def load_trace(name: str) -> tuple[list[float], list[float]]:
    """``(timestamps, values)`` of one trace, oldest first (unix seconds, UTC)."""
    ts: list[float] = []
    values: list[float] = []
    with (TRACES_DIR / name).open() as f:
        for row in csv.DictReader(f):
            stamp = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            ts.append(stamp.timestamp())
            values.append(float(row["value"]))
    return ts, values


def cutoffs(n: int, count: int = CUTOFFS, horizon: int = HORIZON) -> list[int]:
    """``count`` cut-off indexes (history = points before it) from 60 % of the trace to
    its end, leaving ``horizon`` points after the last one to score against."""
    first, last = int(0.6 * n), n - horizon
    return [first + round(i * (last - first) / (count - 1)) for i in range(count)]


def seasonal_lag(ts: Sequence[float]) -> int:
    """Steps in one day at the trace's median step."""
    gaps = sorted(b - a for a, b in pairwise(ts))
    return max(1, round(DAY / gaps[len(gaps) // 2]))


@dataclass
class Score:
    """Accumulated errors of one trace."""

    name: str
    hub: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    seasonal: list[float] = field(default_factory=list)
    covered: int = 0
    scored: int = 0
    models: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def add(
        self,
        actual: Sequence[float],
        mean: Sequence[float],
        lower: Sequence[float],
        upper: Sequence[float],
        history: Sequence[float],
        lag: int,
        model: str,
    ) -> None:
        """Score one cut-off: the hub's forecast and the two naive baselines."""
        h = len(actual)
        self.hub.append(sum(abs(a - m) for a, m in zip(actual, mean, strict=True)) / h)
        self.last.append(sum(abs(a - history[-1]) for a in actual) / h)
        same_time = [history[-lag + (k % lag)] for k in range(h)]
        self.seasonal.append(sum(abs(a - s) for a, s in zip(actual, same_time, strict=True)) / h)
        self.covered += sum(
            1 for a, lo, hi in zip(actual, lower, upper, strict=True) if lo <= a <= hi
        )
        self.scored += h
        self.models[model] = self.models.get(model, 0) + 1

    def row(self) -> dict[str, float | str]:
        """The table row: MAEs, ratio to the best naive, coverage."""
        hub = sum(self.hub) / len(self.hub)
        last = sum(self.last) / len(self.last)
        seasonal = sum(self.seasonal) / len(self.seasonal)
        return {
            "trace": self.name,
            "hub": hub,
            "last": last,
            "seasonal": seasonal,
            "ratio": hub / min(last, seasonal),
            "coverage": self.covered / self.scored,
            "models": ", ".join(f"{k} {v}" for k, v in sorted(self.models.items())),
        }


def print_table(scores: Sequence[Score], extra: str = "") -> None:
    """Per trace and averaged, as a Markdown table."""
    rows = [s.row() for s in scores]
    print(
        "| trace | MAE hub | MAE last value | MAE same time yesterday | hub ÷ best naive "
        f"| 80 % interval coverage | models chosen (cut-offs){extra} |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['trace']} | {r['hub']:.4g} | {r['last']:.4g} | {r['seasonal']:.4g} "
            f"| {r['ratio']:.3f} | {100 * float(r['coverage']):.1f} % | {r['models']} |"
        )
    ratio = sum(float(r["ratio"]) for r in rows) / len(rows)
    coverage = sum(float(r["coverage"]) for r in rows) / len(rows)
    print(f"| **average** | | | | **{ratio:.3f}** | **{100 * coverage:.1f} %** | |")
