"""Where config layers live in the backend: key layout, layer scopes and their API names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shared.tenancy import TIERS

CONFIG_PREFIX = "config/"
GLOBAL_HISTORY_PREFIX = "config/global/history/"
TIER_CONFIG_PREFIX = "config/tiers/"
TENANT_CONFIG_PREFIX = "config/tenants/"

Scope = str | None
"""What a subscriber watches: a tenant id, or ``None`` for the global layer."""
WriteMode = Literal["put", "patch", "rollback", "tenant_deleted"]


@dataclass(frozen=True, slots=True)
class TierScope:
    """The tier-scoped global layer of one tier."""

    tier: str


LayerScope = str | TierScope | None
"""A config layer: a tenant id, a tier's layer, or ``None`` for the global layer."""


def layer_prefix(scope: LayerScope) -> str:
    """The history prefix of one layer."""
    if scope is None:
        return GLOBAL_HISTORY_PREFIX
    if isinstance(scope, TierScope):
        return f"{TIER_CONFIG_PREFIX}{scope.tier}/history/"
    return f"{TENANT_CONFIG_PREFIX}{scope}/history/"


def history_key(scope: LayerScope, sequence: int) -> str:
    """The key of one history entry (zero padded so key order is version order)."""
    return f"{layer_prefix(scope)}{sequence:012d}"


def parse_history_key(key: str) -> tuple[LayerScope, int] | None:
    """``(scope, sequence)`` of a history key, or ``None`` for any other key."""
    scope: LayerScope
    if key.startswith(GLOBAL_HISTORY_PREFIX):
        scope = None
        tail = key[len(GLOBAL_HISTORY_PREFIX) :]
    elif key.startswith(TIER_CONFIG_PREFIX):
        tier, sep, tail = key[len(TIER_CONFIG_PREFIX) :].partition("/history/")
        if not sep or tier not in TIERS:
            return None
        scope = TierScope(tier)
    elif key.startswith(TENANT_CONFIG_PREFIX):
        tenant_id, sep, tail = key[len(TENANT_CONFIG_PREFIX) :].partition("/history/")
        if not sep or not tenant_id:
            return None
        scope = tenant_id
    else:
        return None
    return (scope, int(tail)) if tail.isdigit() else None


def scope_fields(scope: LayerScope) -> dict[str, Any]:
    """How the API names a layer: ``scope`` plus ``tenant_id`` or ``tier``."""
    if scope is None:
        return {"scope": "global", "tenant_id": None}
    if isinstance(scope, TierScope):
        return {"scope": "tier", "tier": scope.tier, "tenant_id": None}
    return {"scope": "tenant", "tenant_id": scope}
