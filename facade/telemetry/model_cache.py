"""Fitted forecast models per series, refitted in the background.

The first fit of a series (or of a new horizon or step) happens in the request that needs
it: there is nothing to answer from yet. After that a request never waits for a fit:

* once ``refit_points`` points were written to the series since its model was fitted, one
  **background refit** is started for that (service, metric, tenant) — at most one at a
  time per series; a request that finds one running does not start another;
* except after a **burst**: ``refit_points`` or more points written since the series was
  last *answered* (a backfill, an import, a caller that asks rarely) are refitted in the
  request, as the first fit is, because the cached model has never seen that stretch
  and answering from it would forecast from a stale fit; a live series that gains a few
  points between questions always refits in the background;
* the fit (model choice and rolling-origin backtest: CPU-bound, 0.1-6 s with the library)
  runs in a dedicated single-thread pool, so the event loop keeps serving and at most one
  core is spent on background fits whatever the number of series;
* meanwhile requests answer from the cached model, its parameters re-applied to the newest
  history (cheap), and say how old the fit is (:meth:`ModelCache.age`);
* the new model replaces the cached one when it is ready (only if the cached one is still
  for the same horizon and step). A refit that fails keeps the old model and is tried again
  after another ``refit_points`` points.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from facade.telemetry.forecasting import BACKTEST_ORIGINS, MAX_WINDOW, FittedSeries, fit_series
from facade.telemetry.ingest import COUNT_METRICS
from facade.telemetry.store import SeriesKey, SeriesStats, TelemetryStore

log = logging.getLogger(__name__)

CACHE_SIZE = 1_024


@dataclass(slots=True)
class CachedModel:
    """One series' fitted model and what the series looked like when it was fitted."""

    fitted: FittedSeries
    writes: int
    """The series' write count the fit saw (points written since = writes now - this)."""
    count: int
    fitted_at: float
    """Wall-clock time (unix seconds) the fit finished."""
    answered_writes: int = 0
    """The series' write count when a request last got an answer from this cache."""
    answer: tuple[int, list[dict[str, float]]] | None = None
    """(the series' write count it was computed at, the forecast)."""
    refit_error: str | None = None
    """Why the last background refit failed (None: it did not)."""


class ModelCache:
    """The fitted model per series, least recently used dropped past ``CACHE_SIZE``."""

    def __init__(
        self,
        store: TelemetryStore,
        *,
        refit_points: int,
        use_library: bool | None,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.refit_points = refit_points
        self.use_library = use_library
        self._owns_executor = executor is None
        # One thread: background fits never take more than one core, and queue when
        # several series need a refit at once.
        self.executor = executor or ThreadPoolExecutor(1, thread_name_prefix="forecast-refit")
        self._models: OrderedDict[SeriesKey, CachedModel] = OrderedDict()
        self._locks: dict[SeriesKey, asyncio.Lock] = {}
        self._refits: dict[SeriesKey, asyncio.Task[None]] = {}
        self.fits = 0
        """Fits done (first and background): for tests and benchmarks."""

    async def model(
        self, key: SeriesKey, stats: SeriesStats, step: float, horizon: int
    ) -> tuple[CachedModel, list[tuple[float, float]]]:
        """The model to answer from and the newest points to forecast from.

        Returns ``(CachedModel, points)``; fits in this request only when the series has
        no usable model (first fit, other horizon or step, a shrunk history), else starts
        a background refit when ``refit_points`` new points arrived and answers at once.
        """
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._models.get(key)
            if cached is not None and (
                cached.fitted.horizon != horizon
                or cached.fitted.step != step
                or stats.count < cached.count
                or (
                    stats.writes - cached.answered_writes >= self.refit_points
                    and not self.refitting(key)
                )
            ):
                cached = None
            if cached is None:
                points = await self._points(key, horizon, for_fit=True)
                fitted = await asyncio.to_thread(self._fit, key, points, step, horizon)
                cached = CachedModel(fitted, stats.writes, stats.count, time.time())
                self._install(key, cached)
            else:
                if stats.writes - cached.writes >= self.refit_points:
                    self._start_refit(key, step, horizon)
                points = await self._points(key, horizon, for_fit=False)
            cached.answered_writes = stats.writes
            self._models.move_to_end(key)
            return cached, points

    def refitting(self, key: SeriesKey) -> bool:
        """Whether a background refit of the series is running (or queued for the pool)."""
        task = self._refits.get(key)
        return task is not None and not task.done()

    async def wait_refit(self, key: SeriesKey) -> None:
        """Wait for the series' background refit, if one is running (tests, benchmarks)."""
        task = self._refits.get(key)
        if task is not None:
            await asyncio.shield(task)

    def age(self, key: SeriesKey, cached: CachedModel, stats: SeriesStats) -> dict[str, Any]:
        """How old the answer's fit is: points written and seconds since, refit running."""
        return {
            "points_since_fit": stats.writes - cached.writes,
            "seconds_since_fit": round(max(0.0, time.time() - cached.fitted_at), 3),
            "fitted_at": round(cached.fitted_at, 3),
            "refit_after_points": self.refit_points,
            "refitting": self.refitting(key),
            "last_refit_error": cached.refit_error,
        }

    async def close(self) -> None:
        """Cancel the background refits (a fit already in the thread finishes there)."""
        tasks = [t for t in self._refits.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -- internals ---------------------------------------------------------------------

    async def _points(
        self, key: SeriesKey, horizon: int, *, for_fit: bool
    ) -> list[tuple[float, float]]:
        # A fit needs the backtest's origins before the fitting window; a cached model
        # only the window it forecasts from.
        limit = MAX_WINDOW + (BACKTEST_ORIGINS * horizon if for_fit else 0)
        return await self.store.query(key, limit=limit)

    def _fit(
        self, key: SeriesKey, points: list[tuple[float, float]], step: float, horizon: int
    ) -> FittedSeries:
        return fit_series(
            [p[1] for p in points],
            step,
            horizon,
            nonnegative=key.metric in COUNT_METRICS,
            use_library=self.use_library,
        )

    def _install(self, key: SeriesKey, cached: CachedModel) -> None:
        self.fits += 1
        self._models[key] = cached
        while len(self._models) > CACHE_SIZE:
            old, _ = self._models.popitem(last=False)
            if not self.refitting(old):
                self._locks.pop(old, None)

    def _start_refit(self, key: SeriesKey, step: float, horizon: int) -> None:
        if self.refitting(key):
            return  # at most one refit per series at a time
        self._refits[key] = asyncio.create_task(
            self._refit(key, step, horizon), name=f"forecast-refit {key}"
        )

    async def _refit(self, key: SeriesKey, step: float, horizon: int) -> None:
        # The write count is read before the points: a point written in between makes the
        # new model look one point older than it is, never younger.
        stats: SeriesStats | None = None
        try:
            stats = await self.store.stats(key)
            points = await self._points(key, horizon, for_fit=True)
            loop = asyncio.get_running_loop()
            fitted = await loop.run_in_executor(
                self.executor, functools.partial(self._fit, key, points, step, horizon)
            )
        except Exception as exc:  # the old model keeps answering; say why in the answer
            log.exception("background refit of %s failed", key)
            cached = self._models.get(key)
            if cached is not None:
                if stats is not None:
                    cached.writes = stats.writes  # next try after another refit_points points
                cached.refit_error = f"{type(exc).__name__}: {exc}"
            return
        assert stats is not None
        async with self._locks.setdefault(key, asyncio.Lock()):
            current = self._models.get(key)
            # A request may have refitted synchronously for another horizon meanwhile.
            if current is not None and (
                current.fitted.horizon != horizon or not math.isclose(current.fitted.step, step)
            ):
                return
            self._install(key, CachedModel(fitted, stats.writes, stats.count, time.time()))
