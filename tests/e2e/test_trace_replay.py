"""End to end: a real load trace replayed into a hub process through POST /telemetry, and
predictions at a few cut-offs compared with the naive baselines (bench/forecast.py does
the full 40-cut-off measurement on every trace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.forecast import ask_until_settled, post_range, register
from bench.forecast_traces import HORIZON, Score, load_trace, seasonal_lag
from tests.processes import HubProcess

pytestmark = pytest.mark.slow


def test_replayed_trace_is_forecast_no_worse_than_naive(tmp_path: Path) -> None:
    ts, values = load_trace("ec2_cpu_utilization_5f5533.csv")
    hub = HubProcess(tmp_path, args=["--data-dir", str(tmp_path / "data")])
    hub.start()
    try:
        with hub.client() as client:
            client.timeout = 120.0  # type: ignore[assignment]
            register(client, "cpu-trace")
            score = Score("ec2_cpu")
            sent = 0
            for cut in (3_000, 3_300, 3_600, 3_900):
                post_range(client, "cpu-trace", ts, values, sent, cut)
                sent = cut
                # 300 new points since the last answer are a burst: refitted in the
                # request, so even the immediate answer comes from a model fitted on the
                # points up to the cut-off (a trickle would refit in the background).
                first, body, _ = ask_until_settled(
                    client,
                    {
                        "service_name": "cpu-trace",
                        "horizon_seconds": HORIZON * 300,
                        "capacity_per_instance": 25,
                    },
                )
                immediate = first["model"]["fit_age"]
                assert immediate["points_since_fit"] == 0
                assert first["model"]["fitted_points"] == cut
                assert first["forecast"][0]["ts"] == ts[cut - 1] + 300
                assert body["model"]["fit_age"]["points_since_fit"] == 0
                assert body["model"]["fitted_points"] == cut
                forecast: list[dict[str, float]] = body["forecast"]
                assert len(forecast) == HORIZON
                assert forecast[0]["ts"] == ts[cut - 1] + 300
                assert body["history"]["points"] == cut
                assert body["model"]["short_history"] is None
                assert body["backtest"]["ratio_to_best_naive"] <= 1.0
                assert 2 <= body["recommended_instances"] <= 2 + 100 // 25 * 2
                score.add(
                    values[cut : cut + HORIZON],
                    [p["value"] for p in forecast],
                    [p["lower"] for p in forecast],
                    [p["upper"] for p in forecast],
                    values[:cut],
                    seasonal_lag(ts),
                    body["model"]["name"],
                )
    finally:
        hub.stop()
    row = score.row()
    # four cut-offs are a small sample: the hub must not be clearly worse than naive
    assert float(row["ratio"]) <= 1.25, row
    assert float(row["coverage"]) >= 0.5, row
