"""``POST /telemetry``: services' points into the telemetry store (issue 15's body and rules).

Body: ``{"service", "metric", "tenant_id"?, "points": [{"ts", "value"}, ...]}``.

* Well-known metrics (:data:`WELL_KNOWN_METRICS`): ``requests`` (count during the interval
  ending at ``ts``), ``errors`` (count), ``latency_ms`` (mean over the interval),
  ``cpu_percent``, ``memory_mb``; any other name matching ``[a-z][a-z0-9_]{0,63}``.
* Points may be in the past (backfill) and in any order; the same (service, metric,
  tenant, ts) replaces the stored value (also within one call: the last one wins).
* At most :data:`MAX_POINTS` points a call. One bad point refuses the whole call with the
  standard 422 naming it; nothing is stored.
* Who may report (checked by the router): roles with the ``report`` permission; a service
  token only for the services it is bound to.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from facade.models import TENANT_ID_PATTERN, ServiceName
from facade.telemetry.store import SeriesKey, TelemetryStore

MAX_POINTS = 10_000
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
WELL_KNOWN_METRICS = {
    "requests": "count of requests during the interval ending at ts",
    "errors": "count of failed requests during the interval ending at ts",
    "latency_ms": "mean latency over the interval, milliseconds",
    "cpu_percent": "CPU use, percent",
    "memory_mb": "resident memory, MB",
}
MAX_TS = 32_503_680_000.0
"""Year 3000: later timestamps are mistakes (milliseconds sent as seconds)."""
MAX_ABS_VALUE = 1e15
COUNT_METRICS = frozenset({"requests", "errors"})
"""Metrics that are counts: a negative value is refused."""

MetricName = Annotated[str, StringConstraints(pattern=METRIC_PATTERN)]


class TelemetryPoint(BaseModel):
    """One point: unix seconds and a finite number."""

    model_config = ConfigDict(extra="forbid")

    ts: float = Field(ge=0, le=MAX_TS, allow_inf_nan=False, description="Unix seconds.")
    value: float = Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)


class TelemetryBatch(BaseModel):
    """``POST /telemetry``: points of one (service, metric, tenant) series."""

    model_config = ConfigDict(extra="forbid")

    service: ServiceName
    metric: MetricName = Field(
        description="requests, errors, latency_ms, cpu_percent, memory_mb, or another "
        "name matching [a-z][a-z0-9_]{0,63}."
    )
    tenant_id: Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)] | None = None
    points: list[TelemetryPoint] = Field(min_length=1, max_length=MAX_POINTS)


class TelemetryService:
    """Validates what pydantic cannot and writes a batch as one transaction."""

    def __init__(self, store: TelemetryStore) -> None:
        self.store = store

    async def ingest(self, batch: TelemetryBatch) -> dict[str, Any]:
        """Store a batch; raise InvalidRequest (nothing stored) if any point is bad."""
        from shared.errors import InvalidRequest

        if batch.metric in COUNT_METRICS:
            bad = [
                {"field": f"points.{i}.value", "problem": "a count cannot be negative"}
                for i, p in enumerate(batch.points)
                if p.value < 0
            ]
            if bad:
                raise InvalidRequest(
                    f"{len(bad)} point(s) refused; nothing was stored",
                    details={"errors": bad[:20], "refused": len(bad)},
                )
        # Same ts twice in one call: the last one wins, as a later call would.
        points = dict((p.ts, p.value) for p in batch.points)
        key = SeriesKey(batch.service, batch.metric, batch.tenant_id)
        written = await self.store.write(key, sorted(points.items()))
        return {
            "service": batch.service,
            "metric": batch.metric,
            "tenant_id": batch.tenant_id,
            "accepted": len(batch.points),
            "stored": written,
        }
