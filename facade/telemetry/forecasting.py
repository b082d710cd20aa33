"""Load forecasts per series: seasonality from the data, model chosen by backtest.

For one series (values at a regular step, oldest first):

1. **Seasonality** is detected, not assumed: a daily (86,400 s) or weekly (604,800 s)
   period, in steps, counts when the history holds at least two such seasons and the
   series' autocorrelation at that lag is at least :data:`SEASON_ACF` and clearly above
   the autocorrelation half a period away (a trend or a random walk is correlated at
   every lag; a cycle is correlated at its period and anti-correlated half-way).
2. **Candidates**: the last value (naive), the value one day earlier (seasonal naive,
   when a day of history exists) and one season earlier for each detected season, plus
   the library's models when the ``forecast`` extra is installed (exponential
   smoothing; MSTL when a season was found). The naive forecast with drift (the last
   value plus the average change per step) and the median of the last ``h`` values
   (6 to 48) are candidates too, so a trend is followed and bursts are damped even
   without the library.
3. **Rolling-origin backtest**: each candidate is fitted once on the history up to the
   earliest of :data:`BACKTEST_ORIGINS` origins (``h`` steps apart, at the end of the
   history) and rolled forward over them with its parameters fixed; the candidate with
   the lowest mean absolute error wins. The naive forecasts compete on the same origins,
   so the hub is not worse than naive on a series where naive is best (up to the
   backtest's sampling noise).
4. **Interval calibration**: every model gives an 80 % interval of its own (the
   library's, or the spread of lag differences for the naive ones). The backtest's
   errors, divided by each interval's half-width, give the factor that makes 80 % of
   them fall inside; the answer's interval is the model's, scaled by that factor.
5. **Too little history** (fewer than :data:`MIN_POINTS` points, or less than two
   seasons of a detected season) answers the naive forecast and says so.

The answer starts one step after the newest point, so backfilled and live history
behave the same.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from facade.telemetry.forecast_models import (
    Drift,
    Fitted,
    Forecast,
    Model,
    RecentMedian,
    SeasonalNaive,
    library_available,
    library_models,
)

DAY = 86_400.0
WEEK = 7 * DAY
SEASON_ACF = 0.3
"""Least autocorrelation at a period for it to count as a season."""
MIN_POINTS = 48
"""Fewest points for anything but the naive forecast."""
BACKTEST_ORIGINS = 12
"""Rolling origins of the backtest, ``h`` steps apart at the end of the history."""
MAX_WINDOW = 4_200
"""Most recent points a model is fitted on (two weeks of 5-minute points and a margin)."""
COVERAGE = 0.8
LIBRARY_MARGIN = 0.85
"""A library model is chosen only if its backtest MAE is below this share of the best
simple candidate's."""


@dataclass(frozen=True, slots=True)
class Season:
    """A detected season: its length in steps and what it is."""

    name: str
    steps: int
    acf: float


def infer_step(ts: Sequence[float]) -> float:
    """The series' step: the median gap between consecutive timestamps."""
    gaps = [b - a for a, b in pairwise(ts) if b > a]
    return float(statistics.median(gaps)) if gaps else 60.0


def autocorrelation(values: Sequence[float], lag: int) -> float:
    """Sample autocorrelation of ``values`` at ``lag`` (0 for a flat series)."""
    n = len(values)
    if lag <= 0 or lag >= n:
        return 0.0
    mean = sum(values) / n
    dev = [v - mean for v in values]
    var = sum(d * d for d in dev)
    if var <= 1e-12 * max(1.0, mean * mean) * n:
        return 0.0
    return sum(dev[i] * dev[i - lag] for i in range(lag, n)) / var


def detect_seasons(values: Sequence[float], step: float) -> list[Season]:
    """Daily and weekly seasons that the data shows (see the module docstring)."""
    found: list[Season] = []
    for name, seconds in (("daily", DAY), ("weekly", WEEK)):
        lag = round(seconds / step)
        if lag < 4 or len(values) < 2 * lag:
            continue
        recent = values[-min(len(values), 4 * lag) :]
        at_period = autocorrelation(recent, lag)
        half_way = autocorrelation(recent, lag // 2)
        if at_period >= SEASON_ACF and at_period >= half_way + 0.2:
            found.append(Season(name, lag, round(at_period, 3)))
    return found


def mae(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """Mean absolute error."""
    return sum(abs(a - p) for a, p in zip(actual, predicted, strict=True)) / max(1, len(actual))


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 1.0
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(slots=True)
class CandidateScore:
    """One candidate's backtest: MAE, the interval scale and its coverage."""

    name: str
    why: str
    mae: float
    scale: float
    coverage: float


@dataclass(slots=True)
class FittedSeries:
    """The chosen model for one series, ready to forecast from newer data."""

    model_name: str
    why: str
    fitted: Fitted
    scale: float
    horizon: int
    step: float
    seasons: list[Season]
    scores: list[CandidateScore]
    short_history: str | None
    fitted_points: int
    fit_seconds: float
    naive_only: bool = False
    library: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def forecast(self, values: Sequence[float], *, nonnegative: bool) -> Forecast:
        """Forecast ``horizon`` steps after ``values`` (the series now), calibrated."""
        window = list(values[-MAX_WINDOW:])
        raw = self.fitted.update(window).forecast(self.horizon)
        return calibrated(raw, self.scale, nonnegative=nonnegative)

    def backtest(self) -> dict[str, Any]:
        """What the answer says about the backtest: every candidate and the naive ones."""
        by_name = {s.name: s for s in self.scores}
        naive = [s for s in self.scores if s.name.startswith(("naive", "seasonal_naive"))]
        best_naive = min(naive, key=lambda s: s.mae) if naive else None
        chosen = by_name.get(self.model_name)
        return {
            "origins": BACKTEST_ORIGINS if self.scores else 0,
            "horizon_steps": self.horizon,
            "mae": chosen.mae if chosen else None,
            "coverage": chosen.coverage if chosen else None,
            "best_naive": best_naive.name if best_naive else None,
            "best_naive_mae": best_naive.mae if best_naive else None,
            "ratio_to_best_naive": (
                round(chosen.mae / best_naive.mae, 4)
                if chosen and best_naive and best_naive.mae > 0
                else None
            ),
            "candidates": [
                {"model": s.name, "mae": s.mae, "coverage": s.coverage} for s in self.scores
            ],
        }


def calibrated(raw: Forecast, scale: float, *, nonnegative: bool) -> Forecast:
    """The forecast with its interval's half-widths scaled by ``scale``."""
    mean, lower, upper = [], [], []
    for m, lo, hi in zip(raw.mean, raw.lower, raw.upper, strict=True):
        centre = m
        below = max(0.0, centre - lo) * scale
        above = max(0.0, hi - centre) * scale
        if nonnegative:
            centre = max(0.0, centre)
        low = centre - below
        if nonnegative:
            low = max(0.0, low)
        mean.append(centre)
        lower.append(low)
        upper.append(centre + above)
    return Forecast(mean, lower, upper)


def candidates_for(
    values: Sequence[float],
    step: float,
    seasons: Sequence[Season],
    horizon: int,
    *,
    use_library: bool,
) -> list[Model]:
    """The models that compete on this series."""
    models: list[Model] = [SeasonalNaive(1), Drift(), RecentMedian(min(48, max(6, horizon)))]
    lags = {s.steps: s.name for s in seasons}
    day = round(DAY / step)
    if day >= 2 and len(values) > day and day not in lags:
        lags[day] = "daily"  # the "same time yesterday" baseline, even when not detected
    for lag, name in sorted(lags.items()):
        models.append(SeasonalNaive(lag, name))
    if use_library:
        models.extend(library_models([s.steps for s in seasons]))
    return models


def backtest(
    model: Model, values: Sequence[float], horizon: int, origins: int, nonnegative: bool
) -> tuple[float, list[float], list[tuple[float, float, float]]]:
    """Rolling-origin backtest: (MAE, normalised errors, (actual, mean, half) triples).

    Fitted once at the earliest origin, then rolled forward with fixed parameters.
    """
    n = len(values)
    first = n - origins * horizon
    fitted = model.fit(values[max(0, first - MAX_WINDOW) : first])
    errors: list[float] = []
    normalised: list[float] = []
    for k in range(origins):
        origin = first + k * horizon
        window = values[max(0, origin - MAX_WINDOW) : origin]
        out = fitted.forecast(horizon) if k == 0 else fitted.update(window).forecast(horizon)
        actual = values[origin : origin + horizon]
        for a, m, lo, hi in zip(actual, out.mean, out.lower, out.upper, strict=False):
            m = max(0.0, m) if nonnegative else m
            errors.append(abs(a - m))
            below, above = max(m - lo, 0.0), max(hi - m, 0.0)
            half = below if a < m else above
            if half > 0:
                normalised.append(abs(a - m) / half)
            else:
                normalised.append(0.0 if abs(a - m) < 1e-9 else math.inf)
    return (sum(errors) / max(1, len(errors)), normalised, [])


def fit_series(
    values: Sequence[float],
    step: float,
    horizon: int,
    *,
    nonnegative: bool = True,
    use_library: bool | None = None,
) -> FittedSeries:
    """Choose and fit the model for one series (see the module docstring)."""
    started = time.perf_counter()
    values = list(values)
    library = library_available() if use_library is None else use_library
    seasons = detect_seasons(values, step)
    short = None
    if len(values) < MIN_POINTS:
        short = f"{len(values)} points; at least {MIN_POINTS} are needed for a model"
    elif len(values) < BACKTEST_ORIGINS * horizon + MIN_POINTS:
        short = (
            f"{len(values)} points; a backtest of {BACKTEST_ORIGINS} origins at this "
            f"horizon needs {BACKTEST_ORIGINS * horizon + MIN_POINTS}"
        )
    else:
        day = round(DAY / step)
        if day >= 4 and len(values) < 2 * day:
            short = (
                f"{len(values)} points cover less than two days (two daily seasons of "
                f"{day} steps); seasonality cannot be detected yet"
            )
    if short is not None:
        naive = SeasonalNaive(1)
        return FittedSeries(
            model_name=naive.name,
            why=f"too little history for a model ({short}): the naive forecast",
            fitted=naive.fit(values[-MAX_WINDOW:] or [0.0]),
            scale=1.0,
            horizon=horizon,
            step=step,
            seasons=seasons,
            scores=[],
            short_history=short,
            fitted_points=len(values),
            fit_seconds=time.perf_counter() - started,
            naive_only=True,
        )
    scores: list[CandidateScore] = []
    models = candidates_for(values, step, seasons, horizon, use_library=library)
    for model in models:
        try:
            error, normalised, _ = backtest(model, values, horizon, BACKTEST_ORIGINS, nonnegative)
        except Exception:
            if isinstance(model, SeasonalNaive):
                raise  # plain Python: a failure here is a bug, not the series' fault
            continue  # a library model that fails to fit this series is not a candidate
        scale = (
            _quantile([x for x in normalised if math.isfinite(x)], COVERAGE) if normalised else 1.0
        )
        if scale <= 0:
            scale = 1.0
        covered = sum(1 for x in normalised if x <= scale) / max(1, len(normalised))
        scores.append(
            CandidateScore(model.name, model.why, round(error, 6), scale, round(covered, 4))
        )
    # The best candidate whose final fit succeeds (the naive ones always do).
    naive_names = {m.name for m in models if isinstance(m, SeasonalNaive | Drift | RecentMedian)}

    def merit(score: CandidateScore) -> float:
        # A library model must beat the simple ones clearly: its extra freedom fits the
        # backtest's few origins better than it forecasts (measured: bench/forecast.py).
        return score.mae if score.name in naive_names else score.mae / LIBRARY_MARGIN

    for best in sorted(scores, key=merit):
        chosen = next(m for m in models if m.name == best.name)
        try:
            fitted = chosen.fit(values[-MAX_WINDOW:])
            break
        except Exception:
            continue
    else:
        raise RuntimeError("no candidate could be fitted")
    others = sorted(s.mae for s in scores if s.name != best.name)
    why = (
        f"{chosen.why}: lowest backtest MAE ({best.mae:.4g}) over {BACKTEST_ORIGINS} "
        f"rolling origins of {horizon} steps" + (f"; next best {others[0]:.4g}" if others else "")
    )
    return FittedSeries(
        model_name=best.name,
        why=why,
        fitted=fitted,
        scale=best.scale,
        horizon=horizon,
        step=step,
        seasons=seasons,
        scores=scores,
        short_history=None,
        fitted_points=len(values),
        fit_seconds=time.perf_counter() - started,
        library=library,
    )
