"""The subscription tiers' tables, loaded once from ``facade/data/tier_defaults.json``."""

from __future__ import annotations

import importlib.resources
from typing import Any

import orjson

from facade.tenancy.config_validation import validate_config
from shared.tenancy import TIERS

DEFAULT_TIER = "free"


def load_tier_defaults() -> dict[str, dict[str, Any]]:
    """The shipped tier defaults table, validated like any config write."""
    raw = importlib.resources.files("facade").joinpath("data/tier_defaults.json").read_bytes()
    table = orjson.loads(raw)
    defaults: dict[str, dict[str, Any]] = {t: validate_config(table[t]) for t in TIERS}
    return defaults
