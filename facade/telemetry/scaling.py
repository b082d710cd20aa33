"""``POST /services/scale/predict``: forecast a service's load and recommend instances.

The forecast comes from :mod:`facade.telemetry.forecasting` over the telemetry store's
series (service, metric, tenant). Fitted models are cached per series
(:mod:`facade.telemetry.model_cache`): only the first fit happens in a request; once
``refit_points`` points were written since the fit, the series is refitted in the
background while requests answer from the cached model, its parameters re-applied to the
newest history (cheap), so every answer starts one step after the newest point and says
how old its fit is (``model.fit_age``).

Recommendation (documented in docs/predictive-scaling.md):

* ``needed = ceil(peak of the forecast's upper bound x (1 + headroom) / capacity)``;
* at least ``minimum``: 2 when the service has redundancy today (two or more
  instances registered), else 1 (a request may ask for another minimum);
* at most the tenant's ``scaling_limits.max_instances`` from its effective config (tier
  defaults in ``facade/data/tier_defaults.json``, overridable per tier and per tenant).

``confidence`` = accuracy x sharpness, each in (0, 1]: accuracy = 1 / (1 + backtest MAE /
mean level), sharpness = 1 / (1 + mean interval half-width / mean level); halved when the
history is too short for a backtest.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from concurrent.futures import Executor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facade.discovery.lookup import DiscoveryService
from facade.models import TENANT_ID_PATTERN, ServiceName
from facade.telemetry.forecasting import MAX_WINDOW, FittedSeries, infer_step
from facade.telemetry.ingest import COUNT_METRICS, METRIC_PATTERN
from facade.telemetry.model_cache import CachedModel, ModelCache
from facade.telemetry.store import SeriesKey, SeriesStats, TelemetryStore
from facade.tenancy.config_store import ConfigService
from shared.errors import InvalidRequest
from shared.tenancy import TenantContext

MAX_HORIZON_STEPS = 2_000
KNEE_RISE = 1.5
"""Latency this many times its low-load baseline marks the capacity knee."""


class ScalePredictRequest(BaseModel):
    """The optional JSON body of ``POST /services/scale/predict`` (query wins if both)."""

    model_config = ConfigDict(extra="forbid")

    service_name: ServiceName | None = None
    tenant_id: str | None = Field(None, pattern=TENANT_ID_PATTERN)
    horizon_seconds: float = Field(3600, gt=0, le=30 * 86_400, allow_inf_nan=False)
    metric: str = Field("requests", pattern=METRIC_PATTERN)
    capacity_per_instance: float | None = Field(
        None,
        gt=0,
        le=1e15,
        allow_inf_nan=False,
        description="The load one instance handles, in the metric's own unit per point "
        "(for requests: requests per step of the series). Absent: learnt from history.",
    )
    headroom: float = Field(0.2, ge=0, le=10, description="Spare capacity kept on top.")
    min_instances: int | None = Field(
        None, ge=1, le=100_000, description="Default: 2 with redundancy today, else 1."
    )


class ScalingService:
    """Forecasts from the telemetry store and turns them into instance counts."""

    def __init__(
        self,
        store: TelemetryStore,
        discovery: DiscoveryService,
        config: ConfigService,
        *,
        refit_points: int = 60,
        use_library: bool | None = None,
        refit_executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.discovery = discovery
        self.config = config
        self.models = ModelCache(
            store, refit_points=refit_points, use_library=use_library, executor=refit_executor
        )

    @property
    def fits(self) -> int:
        """Full fits done (model selection and backtest): for tests and benchmarks."""
        return self.models.fits

    async def close(self) -> None:
        """Stop the background refits."""
        await self.models.close()

    async def predict(self, req: ScalePredictRequest, ctx: TenantContext) -> dict[str, Any]:
        """The whole answer; raises ServiceNotFound, TierNotAllowed or InvalidRequest."""
        assert req.service_name is not None
        service = self.discovery.describe(req.service_name, ctx)  # 404 / 403 first
        key = SeriesKey(req.service_name, req.metric, ctx.tenant_id)
        stats = await self.store.stats(key)
        if stats.count == 0:
            raise InvalidRequest(
                f"no {req.metric!r} history for service {req.service_name!r}"
                + (f" and tenant {ctx.tenant_id!r}" if ctx.tenant_id else "")
                + ": report it with POST /telemetry first",
                details={
                    "missing": {
                        "service": req.service_name,
                        "metric": req.metric,
                        "tenant_id": ctx.tenant_id,
                    }
                },
            )
        cached, forecast = await self._forecast(key, stats, req.horizon_seconds)
        fitted = cached.fitted
        current = len(service["instances"])
        healthy = int(service.get("healthy_instances", current))
        limits = self.tenant_limits(ctx)
        capacity = req.capacity_per_instance
        capacity_info: dict[str, Any] = {"per_instance": capacity, "source": "request"}
        if capacity is None:
            capacity_info = await self.learn_capacity(key, healthy)
            capacity = capacity_info["per_instance"]
        recommendation = recommend(
            [p["upper"] for p in forecast],
            capacity=capacity,
            headroom=req.headroom,
            current=current,
            minimum=req.min_instances,
            maximum=limits.get("max_instances"),
        )
        values = [p["value"] for p in forecast]
        return {
            "service_name": req.service_name,
            "tenant_id": ctx.tenant_id,
            "metric": req.metric,
            "current_instances": current,
            "healthy_instances": healthy,
            "recommended_instances": recommendation["recommended_instances"],
            "confidence": confidence(fitted, forecast),
            "tenant_limits": limits,
            "recommendation": recommendation | {"capacity": capacity_info},
            "step_seconds": fitted.step,
            "history": {
                "points": stats.count,
                "first_ts": stats.first_ts,
                "last_ts": stats.last_ts,
            },
            "forecast": forecast,
            "forecast_peak": max(values) if values else None,
            "model": {
                "name": fitted.model_name,
                "why": fitted.why,
                "short_history": fitted.short_history,
                "seasons": [
                    {"name": s.name, "steps": s.steps, "autocorrelation": s.acf}
                    for s in fitted.seasons
                ],
                "interval": "80 % prediction interval, calibrated on the backtest",
                "interval_scale": round(fitted.scale, 4),
                "library": "statsforecast" if fitted.library else None,
                "fitted_points": fitted.fitted_points,
                "fit_seconds": round(fitted.fit_seconds, 4),
                "fit_age": self.models.age(key, cached, stats),
            },
            "backtest": fitted.backtest(),
        }

    async def _forecast(
        self, key: SeriesKey, stats: SeriesStats, horizon_seconds: float
    ) -> tuple[CachedModel, list[dict[str, float]]]:
        recent = await self.store.query(key, limit=1_000)
        step = infer_step([p[0] for p in recent])
        horizon = max(1, min(MAX_HORIZON_STEPS, math.ceil(horizon_seconds / step - 1e-9)))
        cached, points = await self.models.model(key, stats, step, horizon)
        if cached.answer is not None and cached.answer[0] == stats.writes:
            return cached, cached.answer[1]
        out = await asyncio.to_thread(
            cached.fitted.forecast,
            [p[1] for p in points],
            nonnegative=key.metric in COUNT_METRICS,
        )
        last = points[-1][0]
        forecast = [
            {
                "ts": round(last + (k + 1) * step, 3),
                "value": _round(m),
                "lower": _round(lo),
                "upper": _round(hi),
            }
            for k, (m, lo, hi) in enumerate(zip(out.mean, out.lower, out.upper, strict=True))
        ]
        cached.answer = (stats.writes, forecast)
        return cached, forecast

    def tenant_limits(self, ctx: TenantContext) -> dict[str, Any]:
        """The tenant's ``scaling_limits`` from its effective config (tier defaults,
        global, the tier's layer, its overrides). No tenant context: not capped."""
        if ctx.tenant_id is None:
            return {
                "tier": None,
                "max_instances": None,
                "source": "no tenant context: not capped by a tier",
            }
        effective = self.config.effective(ctx.tenant_id, ctx.tier)
        tier = effective["subscription_tier"]
        section = effective["config"].get("scaling_limits")
        value = section.get("max_instances") if isinstance(section, dict) else None
        source = "effective config (scaling_limits.max_instances)"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            defaults = self.config.tier_defaults.get(tier, {}).get("scaling_limits", {})
            value = defaults.get("max_instances")
            source = "tier defaults (the configured value is not a positive integer)"
        return {
            "tier": tier,
            "max_instances": value,
            "source": source,
            "config_version": effective["version"],
        }

    async def learn_capacity(self, key: SeriesKey, instances: int) -> dict[str, Any]:
        """The load per instance at which latency (or errors) started to rise.

        Needs ``latency_ms`` (or ``errors``) history of the same service and tenant beside
        the load; the instance count is taken as today's healthy count over the whole
        history (the hub keeps no instance-count history yet).
        """
        if instances < 1:
            return _unknown("no healthy instance to divide the load by")
        load = dict(await self.store.query(key, limit=MAX_WINDOW))
        for metric in ("latency_ms", "errors"):
            other = dict(
                await self.store.query(
                    SeriesKey(key.service, metric, key.tenant_id), limit=MAX_WINDOW
                )
            )
            pairs = sorted((load[t], v) for t, v in other.items() if t in load)
            if len(pairs) < 50:
                continue
            knee = capacity_knee(pairs)
            if knee is None:
                return _unknown(
                    f"{metric} did not rise with load up to {pairs[-1][0]:.4g} "
                    f"({len(pairs)} points): capacity is above what history shows"
                )
            return {
                "per_instance": knee / instances,
                "source": f"learnt: {metric} rose above {KNEE_RISE}x its low-load level "
                f"at a load of {knee:.4g} over {instances} healthy instance(s)",
            }
        return _unknown(
            "no capacity_per_instance given and no latency_ms or errors history beside the load"
        )


def _unknown(reason: str) -> dict[str, Any]:
    return {"per_instance": None, "source": "unknown", "reason": reason}


def capacity_knee(pairs: list[tuple[float, float]]) -> float | None:
    """The lowest load (of ten load bands) whose median signal exceeds ``KNEE_RISE`` times
    the median of the lowest three bands (and is above it by a meaningful margin)."""
    bands = 10
    size = len(pairs) // bands
    groups = [pairs[i * size : (i + 1) * size] for i in range(bands)]
    baseline = statistics.median(v for g in groups[:3] for _, v in g)
    for group in groups[3:]:
        level = statistics.median(v for _, v in group)
        if level > KNEE_RISE * baseline and level - baseline > 1e-9:
            return group[0][0]
    return None


def recommend(
    uppers: list[float],
    *,
    capacity: float | None,
    headroom: float,
    current: int,
    minimum: int | None,
    maximum: int | None,
) -> dict[str, Any]:
    """The recommendation arithmetic (see the module docstring)."""
    peak = max(uppers) if uppers else 0.0
    floor = minimum if minimum is not None else (2 if current >= 2 else 1)
    answer: dict[str, Any] = {
        "peak_upper": _round(peak),
        "headroom": headroom,
        "minimum": floor,
        "maximum": maximum,
        "needed_instances": None,
        "recommended_instances": None,
        "limited_by": None,
    }
    if capacity is None:
        answer["limited_by"] = "capacity unknown: give capacity_per_instance"
        return answer
    needed = math.ceil(peak * (1 + headroom) / capacity - 1e-9)
    recommended = max(needed, floor)
    if recommended == floor and needed < floor:
        answer["limited_by"] = "minimum for availability"
    if maximum is not None and recommended > maximum:
        recommended = maximum
        answer["limited_by"] = "tenant_limits.max_instances"
    answer["needed_instances"] = needed
    answer["recommended_instances"] = recommended
    return answer


def confidence(fitted: FittedSeries, forecast: list[dict[str, float]]) -> float:
    """Accuracy x sharpness (module docstring); 0 when nothing is known."""
    if not forecast:
        return 0.0
    level = sum(abs(p["value"]) for p in forecast) / len(forecast)
    half = sum((p["upper"] - p["lower"]) / 2 for p in forecast) / len(forecast)
    bt = fitted.backtest()
    error = bt["mae"]
    if level <= 1e-12:
        return 1.0 if half <= 1e-12 and (error or 0.0) <= 1e-12 else 0.0
    sharpness = 1 / (1 + half / level)
    accuracy = 0.5 if error is None else 1 / (1 + error / level)
    return round(accuracy * sharpness, 3)


def _round(value: float) -> float:
    return float(f"{value:.6g}")
