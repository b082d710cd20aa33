"""Which tenant context a caller may act for: the asserted context checked against its role."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from facade.access.tokens import Permission, Principal, Role
from facade.models import TENANT_ID_PATTERN
from shared.errors import InvalidRequest, TenantHeadersNotAllowed, TenantMismatch
from shared.tenancy import TenantContext, caller_tier, capped_tier

_TENANT_ID = re.compile(TENANT_ID_PATTERN)


def asserted_tenant_context(
    headers: Mapping[str, str], query_tenant_id: str | None
) -> TenantContext:
    """The tenant context a request asserts, not yet checked against its caller.

    Read from the ``x-*`` headers, with ``query_tenant_id`` (the ``tenant_id`` query
    parameter) as a fallback for the tenant id when no header names one.
    """
    ctx = TenantContext.from_headers(headers)
    if ctx.tenant_id is None and query_tenant_id:
        ctx = replace(ctx, tenant_id=query_tenant_id.strip() or None)
    return ctx


def resolve_tenant_context(
    principal: Principal,
    asserted: TenantContext,
    provisioned_tier: Callable[[str | None], str | None],
) -> TenantContext:
    """The tenant context a caller may act for, given what its request asserts.

    - A ``tenant`` token acts for its own tenant at its provisioned tier; asserting
      another tenant or any tier is refused (TenantMismatch).
    - Roles allowed to assert tenant context (gateway, admin) are taken at their word;
      a tier the hub does not know reads as ``free``.
    - Roles allowed to forward it (services, as in the spec's integration examples) get
      the tier of the tenant directory: see :func:`shared.tenancy.capped_tier`.
    - Anyone else sending tenant context is refused (TenantHeadersNotAllowed).

    ``provisioned_tier`` maps a tenant id to its provisioned tier (None if unknown).
    """
    ctx = asserted
    if principal.role is Role.TENANT:
        if ctx.tier is not None or (ctx.tenant_id not in (None, principal.tenant_id)):
            raise TenantMismatch(
                "a tenant token acts for its own tenant at its provisioned tier; "
                "drop the tenant headers",
                details={"tenant_id": principal.tenant_id},
            )
        return replace(ctx, tenant_id=principal.tenant_id, tier=None)
    if not ctx.is_tenant_scoped:
        return ctx
    if principal.allows(Permission.ASSERT_TENANT):
        if ctx.tier is not None:
            ctx = replace(ctx, tier=caller_tier(ctx.tier))
    elif principal.allows(Permission.FORWARD_TENANT):
        ctx = replace(ctx, tier=capped_tier(ctx.tier, provisioned_tier(ctx.tenant_id)))
    else:
        raise TenantHeadersNotAllowed(
            f"a {principal.role.value} token may not assert tenant context headers",
            details={"role": principal.role.value},
        )
    if ctx.tenant_id is not None and not _TENANT_ID.match(ctx.tenant_id):
        raise _invalid_tenant_id()
    return ctx


def _invalid_tenant_id() -> InvalidRequest:
    return InvalidRequest(
        "invalid tenant id", details={"header": "x-tenant-id", "pattern": TENANT_ID_PATTERN}
    )
