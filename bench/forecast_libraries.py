"""Choose the forecasting library by measurement (issue 16): the hub's model selection
run offline (no HTTP) on the load traces with each candidate library's models.

    python -m bench.forecast_libraries naive [STRIDE]          # naive candidates only
    python -m bench.forecast_libraries statsforecast [STRIDE]  # + AutoETS, MSTL (the extra)
    python -m bench.forecast_libraries statsmodels [STRIDE]    # + ETSModel, STLForecast(ETS)

STRIDE (default 1) takes every STRIDE-th of the 40 cut-offs.

Same traces, cut-offs (40 from 60 % to the end) and horizon (12 steps) as
bench/forecast.py; prints the accuracy table, the time per fit (model choice, backtest and
final fit for one cut-off), the library's import time and the process's peak RSS. Install
size is measured outside (``du`` of a fresh venv holding only the library).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.forecast_traces import (
    HORIZON,
    TRACES,
    Score,
    cutoffs,
    load_trace,
    print_table,
    seasonal_lag,
)
from facade.telemetry import forecast_models, forecasting
from facade.telemetry.forecast_models import Forecast, Model


class _StatsmodelsFit:
    """On update, ETS re-applies its parameters to the newer data (``ETSModel.smooth``);
    STL has no such step and is refitted."""

    def __init__(self, model: Any, values: Sequence[float], result: Any = None) -> None:
        self.model = model
        self.values = list(values)
        self.result = model.build(self.values) if result is None else result

    def forecast(self, h: int) -> Forecast:
        frame = self.result.get_prediction(
            start=len(self.values), end=len(self.values) + h - 1
        ).summary_frame(alpha=0.2)
        lower = "pi_lower" if "pi_lower" in frame else "mean_ci_lower"
        upper = "pi_upper" if "pi_upper" in frame else "mean_ci_upper"
        return Forecast(
            [float(v) for v in frame["mean"]],
            [float(v) for v in frame[lower]],
            [float(v) for v in frame[upper]],
        )

    def update(self, values: Sequence[float]) -> _StatsmodelsFit:
        values = values[-forecast_models.LIBRARY_WINDOW :]
        if self.model.name == "ets":
            import pandas as pd

            spec = self.result.model
            again = type(spec)(
                pd.Series(values, dtype=float),
                error=spec.error,
                trend=spec.trend,
                damped_trend=spec.damped_trend,
            ).smooth(self.result.params)
            return _StatsmodelsFit(self.model, values, again)
        return _StatsmodelsFit(self.model, values[-forecast_models.LIBRARY_WINDOW :])


class _StatsmodelsModel:
    def __init__(self, name: str, why: str, build: Any) -> None:
        self.name, self.why, self.build = name, why, build

    def fit(self, values: Sequence[float]) -> _StatsmodelsFit:
        return _StatsmodelsFit(self, values[-forecast_models.LIBRARY_WINDOW :])


def statsmodels_models(seasons: Sequence[int]) -> list[Model]:
    """ETS (simple or damped trend, lower AIC) and STL + ETS on the shortest season."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.forecasting.stl import STLForecast

    def ets(values: Sequence[float]) -> Any:
        y = pd.Series(values, dtype=float)
        fits = [
            ETSModel(y, error="add", trend=None).fit(disp=False),
            ETSModel(y, error="add", trend="add", damped_trend=True).fit(disp=False),
        ]
        return min(fits, key=lambda r: r.aic)

    models: list[Any] = [_StatsmodelsModel("ets", "statsmodels ETSModel", ets)]
    # The same limits as the hub's statsforecast models (window, longest season).
    usable = [s for s in seasons if s <= forecast_models.MAX_LIBRARY_SEASON]
    if usable:
        period = min(usable)

        def stl(values: Sequence[float]) -> Any:
            y = pd.Series(values, dtype=float)
            return STLForecast(
                y, ETSModel, model_kwargs={"error": "add", "trend": None}, period=period
            ).fit(fit_kwargs={"disp": False})

        models.append(_StatsmodelsModel("stl_ets", f"STL({period}) + ETS", stl))
    return models


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "statsforecast"
    # Every n-th cut-off (the same ones for every library): statsmodels refits slowly.
    stride = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    started = time.perf_counter()
    if kind == "statsforecast":
        import statsforecast.models  # noqa: F401
    elif kind == "statsmodels":
        import statsmodels.tsa.api  # noqa: F401

        forecasting.library_models = statsmodels_models  # type: ignore[assignment]
        forecast_models.library_models = statsmodels_models  # type: ignore[assignment]
    import_seconds = time.perf_counter() - started
    use_library = kind != "naive"
    scores = []
    for name in TRACES:
        ts, values = load_trace(name)
        lag = seasonal_lag(ts)
        score = Score(name)
        for cut in cutoffs(len(values))[::stride]:
            history = values[:cut]
            t0 = time.perf_counter()
            fitted = forecasting.fit_series(
                history, forecasting.infer_step(ts[:cut][-1000:]), HORIZON, use_library=use_library
            )
            out = fitted.forecast(history, nonnegative=True)
            score.seconds.append(time.perf_counter() - t0)
            actual = values[cut : cut + HORIZON]
            score.add(actual, out.mean, out.lower, out.upper, history, lag, fitted.model_name)
        scores.append(score)
        print(f"{name} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(f"## {kind}, every {stride} of the 40 cut-offs\n")
    print_table(scores)
    print()
    for s in scores:
        ordered = sorted(s.seconds)
        print(
            f"- {s.name}: fit per cut-off mean {sum(ordered) / len(ordered):.3f} s, "
            f"max {ordered[-1]:.3f} s"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"- import {import_seconds:.2f} s; peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
