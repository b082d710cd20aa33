"""Rate limits on the hub's own API: token buckets per token and per tenant.

Buckets live in each replica's memory, so N replicas behind one address admit up to N
times the configured rate in total; that trade keeps a backend write off every request.
Tenant limits come from the tier's ``api_calls_per_hour`` (the spec's tier table): a
tenant may burst a minute's worth of its hourly allowance, then refills at the hourly
rate.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from shared.errors import RateLimited

TIER_CALLS_PER_HOUR = {"free": 1_000, "pro": 10_000, "enterprise": 100_000}


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
        calls_per_hour: dict[str, int] | None = None,
        max_buckets: int = 100_000,
    ) -> None:
        self.per_token_rate = per_token_rate
        self.per_token_burst = per_token_burst
        self.calls_per_hour = calls_per_hour or TIER_CALLS_PER_HOUR
        self.max_buckets = max_buckets
        # Least recently used first: at the bound the idlest caller's bucket goes (which
        # only forgives it), never everyone's at once.
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, capacity: float, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != capacity:
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
            hourly = self.calls_per_hour.get(tier or "free", self.calls_per_hour["free"])
            wait = self._bucket(f"tenant:{tenant_id}", hourly / 60, hourly / 3600, now).take(now)
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
