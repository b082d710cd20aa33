"""``x-resource-requirements`` on discovery: parse the header, ask the quotas.

A caller names what its call will need (``{"concurrent_requests": 1, "storage_mb": 50}``);
discovery then answers ``resource_check`` (would it fit the tenant's quotas, which
resources would not) and, with ``?reserve=true``, reserves all of it atomically with the
quota routes' semantics (429 ``quota_exceeded`` naming the resources that do not fit).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from facade.access.tokens import Permission, Principal
from facade.runtime import Hub
from shared import errors
from shared.tenancy import (
    HEADER_RESOURCE_REQUIREMENTS,
    TenantContext,
    parse_resource_requirements,
)

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}

RESOURCE_HEADER_DOC = {
    "name": HEADER_RESOURCE_REQUIREMENTS,
    "in": "header",
    "required": False,
    "description": 'Resources the call will need, JSON: {"concurrent_requests": 1, '
    '"storage_mb": 50} (at most 1 KiB). The answer gets resource_check.',
    "schema": {"type": "string"},
}
RESERVE_DOC = {
    "name": "reserve",
    "in": "query",
    "required": False,
    "description": "true: reserve the x-resource-requirements atomically (429 if they do "
    "not fit); needs a token that may report (service, gateway, admin).",
    "schema": {"type": "boolean"},
}


def requested(request: Request) -> tuple[dict[str, int] | None, bool]:
    """The parsed requirements (None without the header) and whether to reserve them.

    Two different values of the header are 400 ``duplicate_header``, like the tenant
    headers; a bad value 400/422/431 (see :func:`parse_resource_requirements`).
    """
    values = {v.strip() for v in request.headers.getlist(HEADER_RESOURCE_REQUIREMENTS)}
    if len(values) > 1:
        raise errors.DuplicateHeader(
            f"the {HEADER_RESOURCE_REQUIREMENTS} header was sent more than once with "
            "different values",
            details={"header": HEADER_RESOURCE_REQUIREMENTS},
        )
    amounts = parse_resource_requirements(values.pop()) if values else None
    raw_reserve = request.query_params.get("reserve")
    reserve = False
    if raw_reserve is not None:
        if raw_reserve.lower() not in _TRUE | _FALSE:
            raise errors.InvalidRequest(
                "reserve must be true or false",
                details={"errors": [{"field": "reserve", "problem": "not a boolean"}]},
            )
        reserve = raw_reserve.lower() in _TRUE
    if reserve and amounts is None:
        raise errors.InvalidRequest(
            f"reserve=true needs the {HEADER_RESOURCE_REQUIREMENTS} header",
            details={"header": HEADER_RESOURCE_REQUIREMENTS},
        )
    return amounts, reserve


async def resource_check(
    hub: Hub,
    principal: Principal,
    ctx: TenantContext,
    amounts: dict[str, int],
    *,
    reserve: bool,
) -> dict[str, Any]:
    """The ``resource_check`` of a discovery answer (reserving first when asked)."""
    if ctx.tenant_id is None:
        raise errors.InvalidRequest(
            f"{HEADER_RESOURCE_REQUIREMENTS} needs a tenant context (x-tenant-id)",
            details={"header": HEADER_RESOURCE_REQUIREMENTS},
        )
    if reserve:
        principal.require(Permission.REPORT)
        reserved = await hub.quotas.allocate_all(ctx.tenant_id, amounts)
        # It fitted (a refusal raised 429): per resource what was reserved and the usage after.
        return {
            "tenant_id": ctx.tenant_id,
            "fits": True,
            "exceeded": [],
            "resources": reserved["allocated"],
            "reserved": True,
        }
    return {**hub.quotas.check_all(ctx.tenant_id, amounts), "reserved": False}
