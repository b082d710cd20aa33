"""The per-endpoint ``confidence`` of a discovery answer: a documented health score.

No model and no "AI": three observed factors multiplied, each in [0, 1].

    confidence = success_rate * latency_factor * trend_factor

* ``success_rate``: share of passing probes among the instance's last 20
  (``facade.health.tracker.SUCCESS_WINDOW``); 1.0 before the first probe (the catalog
  counts an unchecked instance as healthy, and this keeps that prior visible as
  certainty 1).
* ``latency_factor = 1 / (1 + latency_ms / degraded_latency_ms)``: 1.0 at 0 ms, 0.5
  exactly at the instance's own degraded threshold, falling towards 0 beyond it.
  ``latency_ms`` is the EWMA (alpha 0.3) of passing probes; unknown latency gives 1.0.
* ``trend_factor = min(1, 1.25 / trend)`` where ``trend`` is the short latency EWMA
  divided by a long one (alpha 0.05): a steady or improving instance keeps 1.0, one
  whose latency is rising by more than 25 % over its baseline loses in proportion
  (twice its baseline: 0.625).

Rounded to 3 decimals. Critical instances are never candidates, so they have none.
The same text is in ``docs/selection.md``.
"""

from __future__ import annotations

TREND_DEAD_BAND = 1.25


def confidence_score(
    *,
    success_rate: float | None,
    latency_ms: float | None,
    latency_trend: float | None,
    degraded_latency_ms: float,
) -> float:
    """The documented health score of one endpoint (see the module docstring)."""
    success = 1.0 if success_rate is None else min(1.0, max(0.0, success_rate))
    latency_factor = 1.0
    if latency_ms is not None and degraded_latency_ms > 0:
        latency_factor = 1.0 / (1.0 + max(0.0, latency_ms) / degraded_latency_ms)
    trend_factor = 1.0
    if latency_trend is not None and latency_trend > TREND_DEAD_BAND:
        trend_factor = TREND_DEAD_BAND / latency_trend
    return round(success * latency_factor * trend_factor, 3)
