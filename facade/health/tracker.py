"""The per-instance health state machine of the prober (DESIGN.md section 5).

Pure logic, no I/O: :class:`HealthTracker` turns the stream of probe outcomes of one
instance (checked as its :class:`~facade.state.check_spec.CheckSpec` says) into a status
with anti-flapping thresholds and decides when a result is worth writing to the backend.
The prober (``facade.health.prober``) does the probing and the writing.

Status rules (Consul's ``success_before_passing`` / ``failures_before_critical``):

* An instance counts as ``healthy`` until its first probe (the catalog's rule). If the
  very first probe fails it becomes ``critical`` at once: the thresholds protect
  instances that have been passing, not ones that never answered.
* ``failures_before_critical`` consecutive failed probes make a passing instance
  ``critical``; ``successes_before_passing`` consecutive passing probes bring it back.
* A passing probe slower than ``degraded_latency_ms`` is "slow". ``failures_before_critical``
  consecutive slow probes turn ``healthy`` into ``degraded``; ``successes_before_passing``
  consecutive fast ones turn it back. One slow probe never flips the status.
* Failed probes do not feed the latency averages (a timeout is not a latency).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from facade.state.check_spec import CheckSpec
from shared.timestamps import iso_utc, parse_iso_utc

SHORT_EWMA_ALPHA = 0.3
"""Weight of the newest sample in the latency EWMA that is reported and compared."""
LONG_EWMA_ALPHA = 0.05
"""Weight of the newest sample in the slow baseline the trend is measured against."""
SUCCESS_WINDOW = 20
"""How many recent probe outcomes the success rate is computed over."""


def latency_changed(old: float | None, new: float | None, degraded_latency_ms: float) -> bool:
    """Whether latency moved enough to be worth a backend write.

    Both a factor of 2 from the last *written* value and at least a tenth of the
    instance's degraded threshold (50 ms by default): compared with the last write, not
    with bucket edges, so a latency hovering anywhere does not cause a write per probe,
    and loopback jitter of a few milliseconds never does.
    """
    if old is None or new is None:
        return old is not new
    low, high = sorted((max(old, 0.0), max(new, 0.0)))
    return high >= 2 * low and high - low >= 0.1 * degraded_latency_ms


@dataclass
class HealthTracker:
    """One instance's health, fed probe outcomes in order (see the module docstring)."""

    spec: CheckSpec
    status: str = "healthy"
    checked: bool = False
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    consecutive_slow: int = 0
    consecutive_fast: int = 0
    latency_ms: float | None = None
    """Short EWMA of passing probes' latency: the reported ``latency``."""
    baseline_ms: float | None = None
    """Long EWMA of the same: the trend's reference."""
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=SUCCESS_WINDOW))
    last_check: float | None = None
    critical_since: float | None = None
    output: str = ""
    _written: dict[str, Any] | None = None
    _written_at: float = 0.0

    @classmethod
    def from_record(cls, spec: CheckSpec, record: dict[str, Any] | None) -> HealthTracker:
        """Continue from a stored result (a new leader taking over), not from scratch."""
        tracker = cls(spec)
        if not record:
            return tracker
        status = record.get("status")
        if status in ("healthy", "degraded", "critical"):
            tracker.status = status
            tracker.checked = True
        latency = record.get("latency")
        if isinstance(latency, int | float):
            tracker.latency_ms = tracker.baseline_ms = float(latency)
        tracker.last_check = parse_iso_utc(record.get("last_check"))
        tracker.critical_since = parse_iso_utc(record.get("critical_since"))
        if tracker.status == "critical" and tracker.critical_since is None:
            tracker.critical_since = tracker.last_check
        rate = record.get("success_rate")
        if isinstance(rate, int | float) and 0 <= rate <= 1:
            passed = round(rate * 10)
            tracker.outcomes.extend([True] * passed + [False] * (10 - passed))
        tracker._written = tracker._summary()
        tracker._written_at = tracker.last_check or 0.0
        return tracker

    # -- feeding -------------------------------------------------------------------

    def observe(self, passed: bool, latency_ms: float | None, now: float, output: str = "") -> str:
        """Apply one probe outcome; return the status afterwards."""
        first = not self.checked
        self.checked = True
        self.last_check = now
        self.output = output
        self.outcomes.append(passed)
        if passed:
            self._on_pass(latency_ms, first)
        else:
            self._on_fail(first, now)
        return self.status

    def _on_pass(self, latency_ms: float | None, first: bool) -> None:
        spec = self.spec
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        slow = latency_ms is not None and latency_ms > spec.degraded_latency_ms
        if latency_ms is not None:
            self.latency_ms = _ewma(self.latency_ms, latency_ms, SHORT_EWMA_ALPHA)
            self.baseline_ms = _ewma(self.baseline_ms, latency_ms, LONG_EWMA_ALPHA)
        if slow:
            self.consecutive_slow += 1
            self.consecutive_fast = 0
        else:
            self.consecutive_fast += 1
            self.consecutive_slow = 0
        if self.status == "critical":
            if self.consecutive_successes >= spec.successes_before_passing:
                self.status = "degraded" if slow else "healthy"
                self.critical_since = None
        elif self.status == "healthy":
            if self.consecutive_slow >= spec.failures_before_critical or (first and slow):
                self.status = "degraded"
        elif self.consecutive_fast >= spec.successes_before_passing:
            self.status = "healthy"

    def _on_fail(self, first: bool, now: float) -> None:
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        if self.status != "critical" and (
            first or self.consecutive_failures >= self.spec.failures_before_critical
        ):
            self.status = "critical"
            self.critical_since = now

    # -- derived figures -----------------------------------------------------------

    @property
    def success_rate(self) -> float | None:
        """Share of passing probes among the last :data:`SUCCESS_WINDOW`."""
        if not self.outcomes:
            return None
        return sum(self.outcomes) / len(self.outcomes)

    @property
    def latency_trend(self) -> float | None:
        """Short EWMA over long EWMA latency: above 1 means getting slower."""
        if self.latency_ms is None or not self.baseline_ms:
            return None
        return self.latency_ms / self.baseline_ms

    def critical_for(self, now: float) -> float:
        """Seconds the instance has been critical (0 when it is not)."""
        if self.status != "critical" or self.critical_since is None:
            return 0.0
        return max(0.0, now - self.critical_since)

    def should_deregister(self, now: float) -> bool:
        """Whether ``deregister_after`` has run out."""
        limit = self.spec.deregister_after
        return limit is not None and self.critical_for(now) >= limit

    # -- writing -------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The stored result under ``health/<service>/<instance>``."""
        rate = self.success_rate
        trend = self.latency_trend
        return {
            "status": self.status,
            "latency": round(self.latency_ms) if self.latency_ms is not None else None,
            "last_check": iso_utc(self.last_check) if self.last_check is not None else None,
            "success_rate": round(rate, 3) if rate is not None else None,
            "latency_trend": round(trend, 2) if trend is not None else None,
            "consecutive_failures": self.consecutive_failures,
            "consecutive_successes": self.consecutive_successes,
            "critical_since": (
                iso_utc(self.critical_since) if self.critical_since is not None else None
            ),
            "check": self.spec.kind,
            "output": self.output[:512],
        }

    def _summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "latency": self.latency_ms,
            "success_rate": self.success_rate,
        }

    def should_write(self, now: float, refresh_seconds: float) -> bool:
        """Whether the latest result differs meaningfully from the last one written.

        Meaningful: the first result; a status change; latency moved by a factor of 2
        and by a tenth of the degraded threshold (:func:`latency_changed`); the success
        rate moved by 0.1 or more; or ``refresh_seconds`` passed since the last write (so
        ``last_check`` in the backend never gets older than that while probing works).
        The trend is not a trigger of its own: it is rewritten with the next write.
        """
        if self.last_check is None:
            return False
        written = self._written
        if written is None or now - self._written_at >= refresh_seconds:
            return True
        current = self._summary()
        if current["status"] != written["status"]:
            return True
        if latency_changed(written["latency"], current["latency"], self.spec.degraded_latency_ms):
            return True
        old_rate, new_rate = written["success_rate"], current["success_rate"]
        return old_rate is None or new_rate is None or abs(new_rate - old_rate) >= 0.1

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record to write now, and the token to pass to :meth:`mark_written`."""
        return self.record(), self._summary()

    def mark_written(self, now: float, written: dict[str, Any] | None = None) -> None:
        """Remember what the backend accepted (``written`` from :meth:`snapshot`)."""
        self._written = written if written is not None else self._summary()
        self._written_at = now


def _ewma(previous: float | None, sample: float, alpha: float) -> float:
    return sample if previous is None else previous + alpha * (sample - previous)
