"""The spec's tier rule and tenant context parsing."""

from __future__ import annotations

import pytest

from facade.access.tenant_context import resolve_tenant_context
from facade.access.tokens import Role, principal_for, refuse_duplicated_headers
from shared.errors import DuplicateHeader, TenantHeadersNotAllowed, TenantMismatch
from shared.tenancy import (
    TIERS,
    TenantContext,
    caller_tier,
    can_access,
    capped_tier,
    minimum_tier,
)


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
        (["pro"], "platinum", False),  # an unknown caller tier ranks as free
        (["free"], "platinum", True),
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


@pytest.mark.parametrize(
    ("asserted", "provisioned", "tier"),
    [
        # A provisioned tenant: lower is honoured, equal is equal, higher is capped.
        ("free", "pro", "free"),
        ("pro", "pro", "pro"),
        ("enterprise", "pro", "pro"),
        (None, "pro", "pro"),
        ("platinum", "pro", "free"),  # unknown ranks as free, which is below pro
        ("enterprise", "enterprise", "enterprise"),
        # Nobody provisioned the tenant: free whatever is asserted.
        ("free", None, "free"),
        ("pro", None, "free"),
        ("enterprise", None, "free"),
        (None, None, "free"),
    ],
)
def test_a_forwarded_tier_is_capped_at_the_provisioned_tier(
    asserted: str | None, provisioned: str | None, tier: str
) -> None:
    assert capped_tier(asserted, provisioned) == tier


def test_an_unknown_caller_tier_reads_as_free() -> None:
    assert caller_tier("platinum") == "free"
    assert caller_tier("") == "free"
    assert [caller_tier(t) for t in TIERS] == list(TIERS)


PROVISIONED = {"acme": "pro"}
LOWER, EQUAL, HIGHER = "free", "pro", "enterprise"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.GATEWAY, Role.SERVICE])
@pytest.mark.parametrize("tenant", ["acme", "nobody"])
@pytest.mark.parametrize("asserted", [None, LOWER, EQUAL, HIGHER])
def test_tenant_context_rule_for_every_role(role: Role, tenant: str, asserted: str | None) -> None:
    principal = principal_for(role, "t1")
    ctx = resolve_tenant_context(
        principal, TenantContext(tenant_id=tenant, tier=asserted), PROVISIONED.get
    )
    assert ctx.tenant_id == tenant
    if role is Role.SERVICE:
        expected = capped_tier(asserted, PROVISIONED.get(tenant))
        assert ctx.tier == expected
        assert ctx.tier == {"acme": asserted if asserted == LOWER else "pro"}.get(tenant, "free")
    else:  # gateway and admin assert tiers as they see fit; none asserted: provisioned later
        assert ctx.tier == asserted


@pytest.mark.parametrize("asserted", [None, LOWER, EQUAL, HIGHER])
def test_tenant_and_read_only_tokens_cannot_assert_context(asserted: str | None) -> None:
    tenant = principal_for(Role.TENANT, "t2", tenant_id="acme")
    own = resolve_tenant_context(tenant, TenantContext(tenant_id="acme"), PROVISIONED.get)
    assert (own.tenant_id, own.tier) == ("acme", None)
    with pytest.raises(TenantMismatch):
        resolve_tenant_context(tenant, TenantContext(tenant_id="other"), PROVISIONED.get)
    if asserted is not None:
        with pytest.raises(TenantMismatch):
            resolve_tenant_context(
                tenant, TenantContext(tenant_id="acme", tier=asserted), PROVISIONED.get
            )
    reader = principal_for(Role.READ_ONLY, "t3")
    with pytest.raises(TenantHeadersNotAllowed):
        resolve_tenant_context(
            reader, TenantContext(tenant_id="acme", tier=asserted), PROVISIONED.get
        )


def test_a_gateway_may_assert_a_tier_without_a_tenant_a_service_gets_free() -> None:
    gateway = principal_for(Role.GATEWAY, "g")
    service = principal_for(Role.SERVICE, "s")
    assert resolve_tenant_context(gateway, TenantContext(tier="pro"), PROVISIONED.get).tier == (
        "pro"
    )
    assert resolve_tenant_context(service, TenantContext(tier="pro"), PROVISIONED.get).tier == (
        "free"
    )
    unscoped = resolve_tenant_context(service, TenantContext(), PROVISIONED.get)
    assert not unscoped.is_tenant_scoped


@pytest.mark.parametrize(
    "headers",
    [
        [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer a")],
        [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
        [(b"x-tenant-id", b"a"), (b"x-tenant-id", b"b")],
        [(b"x-company-id", b"a"), (b"x-company-id", b"b")],
        [(b"x-subscription-tier", b"free"), (b"x-subscription-tier", b"enterprise")],
        [(b"x-user-id", b"u1"), (b"x-user-id", b"u2")],
    ],
)
def test_ambiguous_identity_headers_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(DuplicateHeader) as raised:
        refuse_duplicated_headers([(b"accept", b"*/*"), *headers])
    assert raised.value.details["header"] == headers[0][0].decode()


def test_repeated_identical_tenant_headers_and_other_headers_pass() -> None:
    refuse_duplicated_headers(
        [
            (b"x-tenant-id", b"a"),
            (b"x-tenant-id", b"a"),
            (b"accept", b"a"),
            (b"accept", b"b"),
            (b"authorization", b"Bearer a"),
        ]
    )
