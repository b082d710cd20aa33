"""The spec's tier rule and tenant context parsing."""

from __future__ import annotations

import pytest

from shared.tenancy import TenantContext, can_access, minimum_tier


@pytest.mark.parametrize(
    ("requirements", "tier", "allowed"),
    [
        (None, "free", True),
        ([], "free", True),
        (["pro", "enterprise"], "free", False),
        (["pro", "enterprise"], "pro", True),
        (["pro", "enterprise"], "enterprise", True),
        (["enterprise"], "pro", False),
        (["enterprise"], "enterprise", True),
        (["free"], "free", True),
        (["enterprise", "pro"], "pro", True),  # order does not matter: lowest is minimum
        (["pro"], "platinum", False),  # unknown caller tiers get nothing gated
    ],
)
def test_can_access(requirements: list[str] | None, tier: str, allowed: bool) -> None:
    assert can_access(requirements, tier) is allowed


def test_minimum_tier() -> None:
    assert minimum_tier(["enterprise", "pro"]) == "pro"
    assert minimum_tier(None) is None


def test_company_id_is_an_alias_of_tenant_id() -> None:
    ctx = TenantContext.from_headers({"x-company-id": "acme", "x-subscription-tier": "pro"})
    assert (ctx.tenant_id, ctx.tier, ctx.is_tenant_scoped) == ("acme", "pro", True)
    both = TenantContext.from_headers({"x-company-id": "other", "x-tenant-id": "acme"})
    assert both.tenant_id == "acme"
    assert TenantContext.from_headers({}).is_tenant_scoped is False
    assert TenantContext.from_headers({"x-tenant-id": "  "}).tenant_id is None


def test_context_round_trips_through_headers() -> None:
    ctx = TenantContext(tenant_id="t", user_id="u", tier="enterprise", correlation_id="c")
    assert TenantContext.from_headers(ctx.to_headers()) == ctx
