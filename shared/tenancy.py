"""Tenant context and subscription tiers, shared by the hub and its clients.

The tier rule is the spec's ``can_user_access_service``: a service lists the tiers that
may use it; a caller may use it when its tier ranks at least as high as any listed tier
(so the lowest listed tier is the minimum). A service that lists none is public. A caller
tier the hub does not know ranks as ``free`` (the spec's ``tier_hierarchy.get(tier, 0)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Tier = Literal["free", "pro", "enterprise"]
TIERS: tuple[Tier, ...] = ("free", "pro", "enterprise")
TIER_RANK: dict[str, int] = {tier: rank for rank, tier in enumerate(TIERS)}

HEADER_TENANT_ID = "x-tenant-id"
HEADER_USER_ID = "x-user-id"
HEADER_SUBSCRIPTION_TIER = "x-subscription-tier"
HEADER_COMPANY_ID = "x-company-id"
HEADER_CORRELATION_ID = "x-correlation-id"
TENANT_HEADERS = (HEADER_TENANT_ID, HEADER_USER_ID, HEADER_SUBSCRIPTION_TIER, HEADER_COMPANY_ID)


def is_tier(value: str) -> bool:
    """Whether ``value`` names a known subscription tier."""
    return value in TIER_RANK


def caller_tier(asserted: str) -> str:
    """The tier a caller's asserted ``x-subscription-tier`` stands for.

    An unknown value ranks as ``free`` (the spec's ``tier_hierarchy.get(tier, 0)``): a
    gateway that forwards a tier the hub does not know gets the lowest tier, not an error.
    """
    return asserted if asserted in TIER_RANK else TIERS[0]


def capped_tier(asserted: str | None, provisioned: str | None) -> str:
    """The tier of a tenant context that a service forwards (rather than a gateway asserts).

    The tenant directory decides: a tenant nobody provisioned is ``free`` whatever is
    asserted; for a provisioned tenant an asserted tier at or below the provisioned one
    is honoured (a service may act with less) and one above it is capped to the
    provisioned tier. No tier asserted means the provisioned tier.
    """
    if provisioned is None or provisioned not in TIER_RANK:
        return TIERS[0]
    if asserted is None:
        return provisioned
    tier = caller_tier(asserted)
    return tier if TIER_RANK[tier] <= TIER_RANK[provisioned] else provisioned


def minimum_tier(requirements: Iterable[str] | None) -> str | None:
    """The lowest tier among a service's requirements, or ``None`` for a public service."""
    ranked = [TIER_RANK[t] for t in requirements or () if t in TIER_RANK]
    return TIERS[min(ranked)] if ranked else None


def can_access(requirements: Iterable[str] | None, tier: str) -> bool:
    """The spec's ``can_user_access_service`` rule for one caller tier."""
    lowest = minimum_tier(requirements)
    if lowest is None:
        return True
    return TIER_RANK.get(tier, 0) >= TIER_RANK[lowest]


@dataclass(frozen=True, slots=True)
class TenantContext:
    """Who a request acts for, as asserted by the tenant headers.

    ``tenant_id`` falls back to ``x-company-id`` (the spec's alias). ``tier`` is ``None``
    when no tier was asserted; the hub then uses the tenant's provisioned tier.
    """

    tenant_id: str | None = None
    user_id: str | None = None
    tier: str | None = None
    correlation_id: str | None = None

    @property
    def is_tenant_scoped(self) -> bool:
        """Whether the request carries a tenant at all (otherwise: legacy behaviour)."""
        return self.tenant_id is not None or self.tier is not None

    def to_headers(self) -> dict[str, str]:
        """The headers that carry this context on an outgoing request."""
        headers: dict[str, str] = {}
        if self.tenant_id:
            headers[HEADER_TENANT_ID] = self.tenant_id
        if self.user_id:
            headers[HEADER_USER_ID] = self.user_id
        if self.tier:
            headers[HEADER_SUBSCRIPTION_TIER] = self.tier
        if self.correlation_id:
            headers[HEADER_CORRELATION_ID] = self.correlation_id
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> TenantContext:
        """Read the context from (case-insensitive) request headers, without validating."""

        def pick(name: str) -> str | None:
            value = headers.get(name)
            return value.strip() or None if value is not None else None

        return cls(
            tenant_id=pick(HEADER_TENANT_ID) or pick(HEADER_COMPANY_ID),
            user_id=pick(HEADER_USER_ID),
            tier=pick(HEADER_SUBSCRIPTION_TIER),
            correlation_id=pick(HEADER_CORRELATION_ID),
        )
