"""The subscription tiers' tables, loaded once from ``facade/data/tier_defaults.json``.

The tiers' names and order are :mod:`shared.tenancy`'s; what each tier gets is data, in
one file: its config defaults (the bottom config layer, whose
``rate_limits.api_calls_per_hour`` is also the rate limiter's table) and its circuit
breaker thresholds (``circuit_breakers``, which is not config).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from typing import Any

import orjson

from facade.tenancy.config_validation import validate_config
from shared.tenancy import TIERS, Tier

TIER_TABLES = "data/tier_defaults.json"
"""The tables' file inside the ``facade`` package."""
DEFAULT_TIER: str = TIERS[0]
"""The tier of a tenant nobody provisioned and no caller asserted: the lowest."""


@dataclass(frozen=True, slots=True)
class CircuitThresholds:
    """One tier's circuit breaker: trip above ``failure_rate``, stay open ``open_seconds``."""

    failure_rate: float
    open_seconds: float


def _read_tier_tables() -> Any:
    raw = importlib.resources.files("facade").joinpath(TIER_TABLES).read_bytes()
    return orjson.loads(raw)


def load_tier_defaults() -> dict[str, dict[str, Any]]:
    """The shipped tier defaults table, validated like any config write."""
    table = _read_tier_tables()
    defaults: dict[str, dict[str, Any]] = {t: validate_config(table[t]) for t in TIERS}
    return defaults


def load_circuit_thresholds() -> dict[Tier, CircuitThresholds]:
    """The shipped circuit thresholds of every tier; ValueError for an impossible one."""
    table = _read_tier_tables()["circuit_breakers"]
    thresholds = {tier: CircuitThresholds(**table[tier]) for tier in TIERS}
    for tier, t in thresholds.items():
        if not (0 <= t.failure_rate < 1 and t.open_seconds > 0):
            raise ValueError(f"{TIER_TABLES}: impossible circuit thresholds for {tier}: {t}")
    return thresholds


TIER_DEFAULTS = load_tier_defaults()
"""Each tier's config defaults (the bottom config layer). Shared: read, never change."""
CIRCUIT_THRESHOLDS = load_circuit_thresholds()
"""Each tier's circuit breaker thresholds (the seed's ``TenantCircuitBreaker`` table)."""


def calls_per_hour() -> dict[str, int]:
    """Each tier's default hourly API allowance: the rate limiter's tier table."""
    return {
        tier: int(defaults["rate_limits"]["api_calls_per_hour"])
        for tier, defaults in TIER_DEFAULTS.items()
    }
