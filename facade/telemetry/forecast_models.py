"""Forecasting models behind one small interface: naive baselines and the optional library.

Every model is fitted on a list of values at a regular step and answers a point forecast
with an 80 % interval for ``h`` steps. The naive models are plain Python (always there);
the library models come from Nixtla's ``statsforecast`` (the ``forecast`` extra, chosen
by measurement: see README "Predictive scaling") and are offered only when it imports.

``update`` re-applies a fitted model's parameters to a newer series without estimating
them again (statsforecast's ``forward``), which is how cached models answer between
refits.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

LIBRARY_WINDOW = 2_000
"""Newest points the library's models see: MSTL's cost grows with the window and the
season length (about 2 s CPU per fit on 4,200 half-hour points with a weekly season, 0.1 s
on 1,500 with a daily one), and every backtest origin pays it."""
MAX_LIBRARY_SEASON = 96
"""Longest season (in steps) MSTL decomposes: a day of 15-minute points. Longer ones (a
day of 5-minute points, a week of half-hourly ones) cost seconds of CPU per STL pass, which
every backtest origin pays; they are left to the seasonal naive candidates."""

Z80 = 1.2815515655446004
"""The standard normal quantile of 0.9: an 80 % central interval is mean ± Z80·sigma."""


@dataclass(frozen=True, slots=True)
class Forecast:
    """A point forecast and its 80 % interval, one value per step ahead."""

    mean: list[float]
    lower: list[float]
    upper: list[float]


class Fitted(Protocol):
    """A model fitted to one series."""

    def forecast(self, h: int) -> Forecast:
        """The next ``h`` steps after the series it was fitted (or updated) on."""
        ...

    def update(self, values: Sequence[float]) -> Fitted:
        """The same parameters applied to ``values`` (a newer version of the series)."""
        ...


class Model(Protocol):
    """A forecasting method that can be fitted to a series."""

    name: str
    why: str

    def fit(self, values: Sequence[float]) -> Fitted:
        """Estimate the model on ``values``."""
        ...


def _stdev(diffs: Sequence[float]) -> float:
    if len(diffs) < 2:
        return 0.0
    mean = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))


# -- naive models (plain Python) ------------------------------------------------------


@dataclass(slots=True)
class _SeasonalNaiveFit:
    values: list[float]
    lag: int
    sigma: float

    def forecast(self, h: int) -> Forecast:
        mean = [self.values[-self.lag + (k % self.lag)] for k in range(h)]
        # Each season ahead adds one lag-difference's variance (random walk over seasons).
        half = [Z80 * self.sigma * math.sqrt(k // self.lag + 1) for k in range(h)]
        return Forecast(
            mean,
            [m - w for m, w in zip(mean, half, strict=True)],
            [m + w for m, w in zip(mean, half, strict=True)],
        )

    def update(self, values: Sequence[float]) -> Fitted:
        return _SeasonalNaiveFit(list(values[-self.lag :]), self.lag, self.sigma)


class SeasonalNaive:
    """The value one season (``lag`` steps) earlier; ``lag=1`` is the plain naive forecast
    (the last value). Its interval comes from the spread of the series' lag differences."""

    def __init__(self, lag: int, label: str | None = None) -> None:
        self.lag = lag
        self.name = "naive" if lag == 1 else f"seasonal_naive_{label or lag}"
        self.why = (
            "the last value"
            if lag == 1
            else f"the value one season ({label or f'{lag} steps'}) earlier"
        )

    def fit(self, values: Sequence[float]) -> Fitted:
        diffs = [values[i] - values[i - self.lag] for i in range(self.lag, len(values))]
        return _SeasonalNaiveFit(list(values[-self.lag :]), self.lag, _stdev(diffs[-2000:]))


@dataclass(slots=True)
class _DriftFit:
    last: float
    slope: float
    sigma: float
    n: int

    def forecast(self, h: int) -> Forecast:
        mean = [self.last + self.slope * (k + 1) for k in range(h)]
        # The drift method's variance: sigma² · k · (1 + k / (n - 1)).
        half = [
            Z80 * self.sigma * math.sqrt((k + 1) * (1 + (k + 1) / max(1, self.n - 1)))
            for k in range(h)
        ]
        return Forecast(
            mean,
            [m - w for m, w in zip(mean, half, strict=True)],
            [m + w for m, w in zip(mean, half, strict=True)],
        )

    def update(self, values: Sequence[float]) -> Fitted:
        return _DriftFit(float(values[-1]), self.slope, self.sigma, self.n)


class Drift:
    """The naive forecast with drift: the last value plus the history's average change
    per step (a straight line through the first and last points of the window)."""

    name = "drift"
    why = "the last value plus the average change per step (naive with drift)"

    def __init__(self, window: int = 1_000) -> None:
        self.window = window

    def fit(self, values: Sequence[float]) -> Fitted:
        recent = list(values[-self.window :])
        n = len(recent)
        slope = (recent[-1] - recent[0]) / (n - 1) if n > 1 else 0.0
        diffs = [b - a - slope for a, b in pairwise(recent)]
        return _DriftFit(float(recent[-1]), slope, _stdev(diffs), n)


@dataclass(slots=True)
class _RecentMedianFit:
    recent: list[float]
    sigma: float

    def forecast(self, h: int) -> Forecast:
        level = statistics.median(self.recent)
        half = Z80 * self.sigma
        return Forecast([level] * h, [level - half] * h, [level + half] * h)

    def update(self, values: Sequence[float]) -> Fitted:
        return _RecentMedianFit(list(values[-len(self.recent) :]), self.sigma)


class RecentMedian:
    """The median of the last ``window`` values, flat: robust to bursts, which is what a
    mean absolute error rewards on spiky load (one spike moves the last value, not the
    median)."""

    name = "recent_median"

    def __init__(self, window: int) -> None:
        self.window = max(1, window)
        self.why = f"the median of the last {self.window} values"

    def fit(self, values: Sequence[float]) -> Fitted:
        v = list(values[-2_000 - self.window :])
        w = self.window
        errors = [v[i] - statistics.median(v[i - w : i]) for i in range(w, len(v))]
        return _RecentMedianFit(v[-w:], _stdev(errors))


# -- statsforecast models (the optional ``forecast`` extra) ---------------------------


def library_available() -> bool:
    """Whether statsforecast imports (the ``forecast`` extra is installed)."""
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(slots=True)
class _LibraryFit:
    model: Any
    values: Any

    def forecast(self, h: int) -> Forecast:
        out = self.model.predict(h=h, level=[80])
        return _as_forecast(out)

    def update(self, values: Sequence[float]) -> Fitted:
        import numpy as np

        return _ForwardFit(self.model, np.asarray(values[-LIBRARY_WINDOW:], dtype=float))


@dataclass(slots=True)
class _ForwardFit:
    model: Any
    values: Any

    def forecast(self, h: int) -> Forecast:
        return _as_forecast(self.model.forward(y=self.values, h=h, level=[80]))

    def update(self, values: Sequence[float]) -> Fitted:
        import numpy as np

        return _ForwardFit(self.model, np.asarray(values[-LIBRARY_WINDOW:], dtype=float))


def _as_forecast(out: dict[str, Any]) -> Forecast:
    mean = [float(v) for v in out["mean"]]
    lower = [float(v) for v in out.get("lo-80", out["mean"])]
    upper = [float(v) for v in out.get("hi-80", out["mean"])]
    # A failed optimisation can leave NaNs: fall back to a flat band around the mean.
    if any(not math.isfinite(v) for v in mean):
        raise ValueError("the model produced a non-finite forecast")
    lower = [lo if math.isfinite(lo) else m for lo, m in zip(lower, mean, strict=True)]
    upper = [hi if math.isfinite(hi) else m for hi, m in zip(upper, mean, strict=True)]
    return Forecast(mean, lower, upper)


class LibraryModel:
    """One statsforecast model, built fresh for every fit by ``factory``."""

    def __init__(self, name: str, why: str, factory: Any) -> None:
        self.name = name
        self.why = why
        self.factory = factory

    def fit(self, values: Sequence[float]) -> Fitted:
        import numpy as np

        y = np.asarray(values[-LIBRARY_WINDOW:], dtype=float)
        model = self.factory()
        model.fit(y=y)
        return _LibraryFit(model, y)


def library_models(seasons: Sequence[int]) -> list[Model]:
    """statsforecast candidates for a series with the detected ``seasons`` (steps)."""
    from statsforecast.models import MSTL, AutoETS

    models: list[Model] = [
        LibraryModel(
            "ets",
            "exponential smoothing (AutoETS: error/trend chosen by AICc, no season)",
            lambda: AutoETS(season_length=1, model="ZZN"),
        )
    ]
    chosen = sorted(s for s in seasons if s <= MAX_LIBRARY_SEASON and 2 * s <= LIBRARY_WINDOW)
    if chosen:
        models.append(
            LibraryModel(
                "mstl",
                f"MSTL decomposition with seasons of {chosen} steps, trend by AutoETS",
                lambda: MSTL(
                    season_length=chosen, trend_forecaster=AutoETS(season_length=1, model="ZZN")
                ),
            )
        )
    return models
