"""Tenant context and subscription tiers, shared by the hub and its clients.

The tier rule is the spec's ``can_user_access_service``: a service lists the tiers that
may use it; a caller may use it when its tier ranks at least as high as any listed tier
(so the lowest listed tier is the minimum). A service that lists none is public. A caller
tier the hub does not know ranks as ``free`` (the spec's ``tier_hierarchy.get(tier, 0)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from shared.errors import HeadersTooLarge, InvalidRequest, MalformedJSON

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


HEADER_RESOURCE_REQUIREMENTS = "x-resource-requirements"
"""Optional header: the resources a call will need, as a JSON object of whole amounts,
e.g. ``{"concurrent_requests": 1, "storage_mb": 50}``."""
RESOURCE_REQUIREMENTS_MAX_BYTES = 1024
RESOURCE_REQUIREMENTS_MAX_ENTRIES = 16
RESOURCE_AMOUNT_MAX = 1_000_000_000


def parse_resource_requirements(raw: str) -> dict[str, int]:
    """Parse an ``x-resource-requirements`` value: a JSON object of non-negative integers.

    Bounded before parsing (at most :data:`RESOURCE_REQUIREMENTS_MAX_BYTES` bytes,
    :data:`RESOURCE_REQUIREMENTS_MAX_ENTRIES` entries, each amount at most
    :data:`RESOURCE_AMOUNT_MAX`), so a header cannot make the reader do unbounded work.
    Raises :class:`~shared.errors.HeadersTooLarge` (431) when too long,
    :class:`~shared.errors.MalformedJSON` (400) when not JSON, and
    :class:`~shared.errors.InvalidRequest` (422) when the JSON is not such an object.
    Which resource names exist is the hub's business (it answers 422 for unknown ones).
    """
    header = HEADER_RESOURCE_REQUIREMENTS
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > RESOURCE_REQUIREMENTS_MAX_BYTES:
        raise HeadersTooLarge(
            f"{header} is {size} bytes; at most {RESOURCE_REQUIREMENTS_MAX_BYTES} are accepted",
            details={"header": header, "limit_bytes": RESOURCE_REQUIREMENTS_MAX_BYTES},
        )
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise MalformedJSON(
            f"{header} is not valid JSON: {exc}", details={"header": header}
        ) from None
    if not isinstance(value, dict) or not value:
        raise InvalidRequest(
            f'{header} must be a non-empty JSON object such as {{"storage_mb": 50}}',
            details={"header": header},
        )
    if len(value) > RESOURCE_REQUIREMENTS_MAX_ENTRIES:
        raise InvalidRequest(
            f"{header} names {len(value)} resources; at most "
            f"{RESOURCE_REQUIREMENTS_MAX_ENTRIES} are accepted",
            details={"header": header},
        )
    amounts: dict[str, int] = {}
    for name, amount in value.items():
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int)
            or not 0 <= amount <= RESOURCE_AMOUNT_MAX
        ):
            raise InvalidRequest(
                f"{header}: {name!r} must be a whole number from 0 to {RESOURCE_AMOUNT_MAX}",
                details={"header": header, "resource": name, "value": repr(amount)[:64]},
            )
        amounts[name] = amount
    return amounts


def format_resource_requirements(amounts: Mapping[str, int]) -> str:
    """The ``x-resource-requirements`` value for ``amounts`` (compact JSON)."""
    return json.dumps(dict(amounts), separators=(",", ":"))
