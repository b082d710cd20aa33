"""The tier tables come from one file and keep the seed's numbers."""

from __future__ import annotations

from facade.circuits.breakers import SPEC_POLICIES, CircuitPolicy
from facade.settings import HubSettings, TierName
from facade.tenancy.tiers import (
    CIRCUIT_THRESHOLDS,
    DEFAULT_TIER,
    TIER_DEFAULTS,
    calls_per_hour,
    load_tier_defaults,
)
from shared.tenancy import TIERS, Tier

SEED_CIRCUITS = {"free": (0.5, 60), "pro": (0.3, 30), "enterprise": (0.1, 10)}
"""The seed's TenantCircuitBreaker table: (failure rate threshold, seconds open)."""
SEED_CALLS_PER_HOUR = {"free": 1_000, "pro": 10_000, "enterprise": 100_000}
"""The spec's Subscription_Tiers api_calls_per_hour."""


def test_every_table_covers_the_tiers_of_shared_tenancy_in_order() -> None:
    assert TierName is Tier
    assert DEFAULT_TIER == TIERS[0] == "free"
    assert tuple(TIER_DEFAULTS) == TIERS
    assert tuple(CIRCUIT_THRESHOLDS) == TIERS
    assert tuple(SPEC_POLICIES) == TIERS
    assert tuple(calls_per_hour()) == TIERS


def test_circuit_thresholds_are_the_seeds_in_breakers_and_settings() -> None:
    assert {t: (c.failure_rate, c.open_seconds) for t, c in CIRCUIT_THRESHOLDS.items()} == (
        SEED_CIRCUITS
    )
    assert {t: CircuitPolicy(*seed) for t, seed in SEED_CIRCUITS.items()} == SPEC_POLICIES
    defaults = HubSettings().circuit_thresholds
    assert {t: (c.failure_rate, c.open_seconds) for t, c in defaults.items()} == SEED_CIRCUITS


def test_the_rate_limiters_table_is_the_tier_defaults_hourly_allowance() -> None:
    assert calls_per_hour() == SEED_CALLS_PER_HOUR
    assert calls_per_hour() == {
        tier: defaults["rate_limits"]["api_calls_per_hour"]
        for tier, defaults in load_tier_defaults().items()
    }


def test_circuit_thresholds_are_not_config() -> None:
    assert load_tier_defaults() == TIER_DEFAULTS
    for defaults in TIER_DEFAULTS.values():
        assert set(defaults) == {"rate_limits", "features", "resource_limits", "scaling_limits"}
