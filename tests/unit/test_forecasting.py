"""Forecasts of known series, seasonality detection and the recommendation arithmetic.

The naive path (no library) always runs; the library path runs when the ``forecast``
extra (statsforecast) is installed and is skipped, saying so, when it is not.
"""

from __future__ import annotations

import math
import random

import pytest

from facade.telemetry.forecast_models import library_available
from facade.telemetry.forecasting import MIN_POINTS, detect_seasons, fit_series
from facade.telemetry.scaling import capacity_knee, recommend

STEP = 300.0  # 5 minutes
DAY_STEPS = 288

LIBRARY = [
    False,
    pytest.param(
        True,
        marks=[
            pytest.mark.skipif(
                not library_available(),
                reason="statsforecast is not installed (pip install 'central-hub[forecast]')",
            ),
            pytest.mark.slow,  # the first one imports numpy, pandas, scipy, statsforecast
        ],
    ),
]


def daily_sine(days: int, noise: float, seed: int = 7) -> tuple[list[float], list[float]]:
    """(observed, true) values of 100 + 40·sin(2πt/day) with Gaussian noise."""
    rng = random.Random(seed)
    true = [100 + 40 * math.sin(2 * math.pi * t / DAY_STEPS) for t in range(days * DAY_STEPS)]
    return [v + rng.gauss(0, noise) for v in true], true


@pytest.mark.parametrize("use_library", LIBRARY)
def test_constant_series_forecasts_the_constant(use_library: bool) -> None:
    fitted = fit_series([42.0] * 700, STEP, 12, use_library=use_library)
    out = fitted.forecast([42.0] * 700, nonnegative=True)
    assert out.mean == pytest.approx([42.0] * 12, abs=1e-6)
    assert out.lower == pytest.approx([42.0] * 12, abs=1e-3)
    assert out.upper == pytest.approx([42.0] * 12, abs=1e-3)
    assert fitted.short_history is None


@pytest.mark.parametrize("use_library", LIBRARY)
def test_linear_trend_is_continued(use_library: bool) -> None:
    values = [10.0 + 2.0 * t for t in range(700)]
    fitted = fit_series(values, STEP, 12, use_library=use_library)
    out = fitted.forecast(values, nonnegative=True)
    expected = [10.0 + 2.0 * t for t in range(700, 712)]
    assert out.mean == pytest.approx(expected, rel=0.01)
    # the naive forecast (flat) would be 2-24 below: the trend must have been chosen
    assert fitted.model_name != "naive"


@pytest.mark.parametrize("use_library", LIBRARY)
def test_daily_sine_with_noise(use_library: bool) -> None:
    observed, true = daily_sine(days=6, noise=3.0)
    history, future = observed[:-24], true[-24:]
    assert [s.name for s in detect_seasons(history, STEP)] == ["daily"]
    fitted = fit_series(history, STEP, 24, use_library=use_library)
    out = fitted.forecast(history, nonnegative=True)
    error = sum(abs(m - t) for m, t in zip(out.mean, future, strict=True)) / 24
    # the noise alone makes the seasonal naive about 3.4 off; the last value ~25 off
    assert error < 5.0, (fitted.model_name, error)
    actual = observed[-24:]
    inside = sum(lo <= a <= hi for a, lo, hi in zip(actual, out.lower, out.upper, strict=True))
    assert 12 <= inside <= 24  # an 80 % interval: most, not necessarily all
    widths = [hi - lo for lo, hi in zip(out.lower, out.upper, strict=True)]
    assert all(2.0 < w < 40.0 for w in widths)


def test_no_season_in_noise_or_trend() -> None:
    rng = random.Random(1)
    noise = [100 + rng.gauss(0, 5) for _ in range(3 * DAY_STEPS)]
    walk = [0.0]
    for _ in range(3 * DAY_STEPS):
        walk.append(walk[-1] + rng.gauss(0, 1))
    assert detect_seasons(noise, STEP) == []
    assert detect_seasons(walk, STEP) == []
    assert detect_seasons([float(t) for t in range(3 * DAY_STEPS)], STEP) == []


def test_weekly_season_needs_two_weeks() -> None:
    hourly = 3600.0
    weekdays = [100.0 if (t // 24) % 7 < 5 else 20.0 for t in range(3 * 7 * 24)]
    assert "weekly" in [s.name for s in detect_seasons(weekdays, hourly)]
    assert "weekly" not in [s.name for s in detect_seasons(weekdays[: 13 * 24], hourly)]


def test_too_short_history_answers_naive_and_says_so() -> None:
    values = [5.0, 7.0, 6.0] * 10
    fitted = fit_series(values, STEP, 12, use_library=False)
    assert len(values) < MIN_POINTS
    assert fitted.model_name == "naive"
    assert fitted.short_history is not None
    assert "30 points" in fitted.short_history
    assert fitted.forecast(values, nonnegative=True).mean == [6.0] * 12
    assert fitted.backtest()["mae"] is None
    # enough points but under two days of 5-minute data: still naive, for that reason
    day_and_a_half = fit_series([1.0] * 432, STEP, 12, use_library=False)
    assert day_and_a_half.short_history is not None
    assert "two days" in day_and_a_half.short_history


def test_backtest_never_picks_worse_than_the_best_naive() -> None:
    observed, _ = daily_sine(days=4, noise=1.0)
    fitted = fit_series(observed, STEP, 12, use_library=False)
    report = fitted.backtest()
    assert report["ratio_to_best_naive"] is not None
    assert report["ratio_to_best_naive"] <= 1.0
    assert {c["model"] for c in report["candidates"]} >= {"naive", "seasonal_naive_daily"}


@pytest.mark.parametrize(
    ("uppers", "capacity", "headroom", "current", "minimum", "maximum", "expected", "limited"),
    [
        # peak 950 x 1.2 / 100 = 11.4 -> 12
        ([500, 950, 700], 100, 0.2, 3, None, None, 12, None),
        # exactly on a boundary: 1000 x 1.0 / 100 = 10, not 11
        ([1000], 100, 0.0, 3, None, None, 10, None),
        # low load: the availability minimum (2 with redundancy today)
        ([10], 100, 0.2, 2, None, None, 2, "minimum for availability"),
        # a single instance today: minimum 1
        ([10], 100, 0.2, 1, None, None, 1, None),
        # capped by the tier
        ([5000], 100, 0.2, 3, None, 10, 10, "tenant_limits.max_instances"),
        # an explicit minimum
        ([10], 100, 0.2, 1, 3, None, 3, "minimum for availability"),
    ],
)
def test_recommendation_arithmetic(
    uppers: list[float],
    capacity: float,
    headroom: float,
    current: int,
    minimum: int | None,
    maximum: int | None,
    expected: int,
    limited: str | None,
) -> None:
    answer = recommend(
        uppers,
        capacity=capacity,
        headroom=headroom,
        current=current,
        minimum=minimum,
        maximum=maximum,
    )
    assert answer["recommended_instances"] == expected
    assert answer["limited_by"] == limited
    assert answer["peak_upper"] == max(uppers)


def test_unknown_capacity_recommends_nothing() -> None:
    answer = recommend([100], capacity=None, headroom=0.2, current=2, minimum=None, maximum=5)
    assert answer["recommended_instances"] is None
    assert "capacity unknown" in answer["limited_by"]


def test_capacity_knee_is_where_latency_rises() -> None:
    # latency flat at 20 ms up to a load of 600, then climbing
    pairs = [
        (float(load), 20.0 if load < 600 else 20.0 + (load - 600) * 0.5)
        for load in range(0, 1000, 5)
    ]
    knee = capacity_knee(pairs)
    assert knee is not None
    assert 600 <= knee <= 700
    assert capacity_knee([(float(x), 20.0) for x in range(200)]) is None
