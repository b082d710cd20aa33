"""Health check declarations: what a registration declares, with defaults resolved once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CheckKind = Literal["http", "tcp", "ttl"]
PROBED_KINDS: frozenset[str] = frozenset({"http", "tcp"})

DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_FAILURES_BEFORE_CRITICAL = 3
DEFAULT_SUCCESSES_BEFORE_PASSING = 2
DEFAULT_DEGRADED_LATENCY_MS = 500.0


def default_check_kind(protocol: str, ttl: int | None) -> CheckKind:
    """HTTP for http/https services, TTL when the instance heartbeats, else TCP connect."""
    if protocol in ("http", "https"):
        return "http"
    if ttl is not None:
        return "ttl"
    return "tcp"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """How one instance is checked; defaults resolved, stored in its catalog record."""

    kind: CheckKind
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    failures_before_critical: int = DEFAULT_FAILURES_BEFORE_CRITICAL
    successes_before_passing: int = DEFAULT_SUCCESSES_BEFORE_PASSING
    degraded_latency_ms: float = DEFAULT_DEGRADED_LATENCY_MS
    deregister_after: float | None = None

    @property
    def probed(self) -> bool:
        """Whether the hub probes it (TTL checks are kept by heartbeats and leases)."""
        return self.kind in PROBED_KINDS

    def to_record(self) -> dict[str, Any]:
        """The stored JSON form."""
        return {
            "kind": self.kind,
            "interval": self.interval,
            "timeout": self.timeout,
            "failures_before_critical": self.failures_before_critical,
            "successes_before_passing": self.successes_before_passing,
            "degraded_latency_ms": self.degraded_latency_ms,
            "deregister_after": self.deregister_after,
        }

    @classmethod
    def resolve(
        cls, declared: dict[str, Any] | None, *, protocol: str, ttl: int | None
    ) -> CheckSpec:
        """A spec from a declared (or stored) check; absent fields take the defaults.

        Stored records were validated when written; anything unreadable here (a record
        written by hand or by another tool) falls back to the defaults rather than failing.
        """
        declared = declared or {}
        kind = declared.get("kind") or default_check_kind(protocol, ttl)
        if kind not in ("http", "tcp", "ttl"):
            kind = default_check_kind(protocol, ttl)

        def number(name: str, default: float) -> float:
            value = declared.get(name)
            return float(value) if isinstance(value, int | float) and value > 0 else default

        deregister_after = declared.get("deregister_after")
        return cls(
            kind=kind,
            interval=number("interval", DEFAULT_INTERVAL),
            timeout=number("timeout", DEFAULT_TIMEOUT),
            failures_before_critical=int(
                number("failures_before_critical", DEFAULT_FAILURES_BEFORE_CRITICAL)
            ),
            successes_before_passing=int(
                number("successes_before_passing", DEFAULT_SUCCESSES_BEFORE_PASSING)
            ),
            degraded_latency_ms=number("degraded_latency_ms", DEFAULT_DEGRADED_LATENCY_MS),
            deregister_after=(
                float(deregister_after)
                if isinstance(deregister_after, int | float) and deregister_after > 0
                else None
            ),
        )
