"""Rate limits on the hub's own API: token buckets per token and per tenant.

Buckets live in each replica's memory, so N replicas behind one address admit up to N
times the configured rate in total; that trade keeps a backend write off every request.
Tenant limits are the tenant's effective ``rate_limits.api_calls_per_hour`` (tier
defaults, global, the tier's global layer, the tenant's overrides; ``limit_of``), else the
tier table: a tenant may burst a minute's worth of its hourly allowance (at least one
call), then refills at the hourly rate.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import RateLimited


@dataclass(slots=True)
class TokenBucket:
    """Classic token bucket: ``capacity`` tokens, refilled at ``rate`` per second."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; return 0 on success or the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """Admits or refuses one request for a token and, if any, a tenant."""

    def __init__(
        self,
        *,
        per_token_rate: float,
        per_token_burst: float,
        calls_per_hour: dict[str, int],
        limit_of: Callable[[str, str | None], int | None] | None = None,
        max_buckets: int = 100_000,
    ) -> None:
        """``calls_per_hour``: each tier's hourly allowance (with a ``free`` entry, the
        fallback), used when ``limit_of`` has no limit for a tenant."""
        self.per_token_rate = per_token_rate
        self.per_token_burst = per_token_burst
        self.calls_per_hour = calls_per_hour
        self.limit_of = limit_of
        self.max_buckets = max_buckets
        # Least recently used first: at the bound the idlest caller's bucket goes (which
        # only forgives it), never everyone's at once.
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, capacity: float, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != capacity or bucket.rate != rate:
            bucket = TokenBucket(capacity, rate, capacity, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        return bucket

    def admit(self, token_id: str, tenant_id: str | None, tier: str | None) -> None:
        """Raise RateLimited (with ``retry_after``) when either bucket is empty."""
        now = time.monotonic()
        if tenant_id is not None:
            hourly = self.limit_of(tenant_id, tier) if self.limit_of is not None else None
            if hourly is None:
                hourly = self.calls_per_hour.get(tier or "free", self.calls_per_hour["free"])
            wait = 3600.0  # a limit of 0 allows no calls at all
            if hourly > 0:
                burst = max(1.0, hourly / 60)
                wait = self._bucket(f"tenant:{tenant_id}", burst, hourly / 3600, now).take(now)
            if wait:
                raise RateLimited(
                    f"tenant {tenant_id!r} exceeded {hourly} API calls per hour",
                    details={"tenant_id": tenant_id, "limit_per_hour": hourly, "retry_after": wait},
                )
        wait = self._bucket(
            f"token:{token_id}", self.per_token_burst, self.per_token_rate, now
        ).take(now)
        if wait:
            raise RateLimited(
                "this token exceeded its request rate",
                details={"rate_per_second": self.per_token_rate, "retry_after": wait},
            )
