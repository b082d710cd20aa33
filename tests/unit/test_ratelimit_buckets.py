"""Rate-limit buckets are bounded by LRU: the idlest go, an active caller keeps its own."""

from __future__ import annotations

import pytest

from facade.access.rate_limits import RateLimiter
from facade.tenancy.tiers import calls_per_hour
from shared.errors import RateLimited


def test_a_busy_caller_keeps_its_empty_bucket_while_idle_ones_are_evicted() -> None:
    limiter = RateLimiter(
        per_token_rate=0.001, per_token_burst=2, calls_per_hour=calls_per_hour(), max_buckets=3
    )
    limiter.admit("busy", None, None)
    limiter.admit("busy", None, None)
    for i in range(50):
        limiter.admit(f"passer-by-{i}", None, None)  # each a first call: admitted
        # Clearing every bucket at the bound would hand "busy" a fresh burst here.
        with pytest.raises(RateLimited):
            limiter.admit("busy", None, None)
        assert len(limiter._buckets) <= 3
    assert "token:passer-by-0" not in limiter._buckets
