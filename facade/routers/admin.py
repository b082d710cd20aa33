"""Tokens and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from facade.access.tokens import Role
from facade.models import TENANT_ID_PATTERN, ServiceName
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import Administrator, HubDep, Reader
from shared.errors import Forbidden

router = APIRouter(tags=["security"])


class TokenRequest(BaseModel):
    """A token to issue."""

    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="admin, service, gateway, tenant or read-only.")
    name: str = Field(min_length=1, max_length=128, description="What the token is for.")
    tenant_id: str | None = Field(
        None, pattern=TENANT_ID_PATTERN, description="Required for (only) tenant tokens."
    )
    services: list[ServiceName] | None = Field(
        None,
        max_length=64,
        description="Service tokens: the service names it may register (empty: any).",
    )
    expires_in: int | None = Field(
        None,
        ge=1,
        le=10 * 365 * 86400,
        description="Seconds until the token expires (default: never); its streams end then.",
    )


@router.post("/tokens", status_code=201)
async def issue_token(body: TokenRequest, hub: HubDep, caller: Administrator) -> JSONBytesResponse:
    """Issue a token. The secret is in this answer only; the hub keeps its hash."""
    token, record = await hub.tokens.issue(
        role=body.role,
        name=body.name,
        created_by=caller.token_id,
        tenant_id=body.tenant_id,
        services=body.services,
        expires_in=body.expires_in,
    )
    return json_response({"token": token, "record": record}, status_code=201)


@router.get("/tokens")
async def list_tokens(hub: HubDep, _: Administrator) -> JSONBytesResponse:
    """Every token's record (never secrets)."""
    return json_response({"tokens": hub.tokens.list()})


@router.delete("/tokens/{token_id}")
async def revoke_token(
    token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$")], hub: HubDep, _: Administrator
) -> JSONBytesResponse:
    """Revoke a token at once on every replica."""
    return json_response(await hub.tokens.revoke(token_id))


@router.get("/audit")
async def read_audit(
    hub: HubDep,
    caller: Reader,
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
    actor: Annotated[str | None, Query(max_length=64, description="Token id.")] = None,
    action: Annotated[str | None, Query(max_length=128, description="Substring.")] = None,
    before: Annotated[
        str | None, Query(max_length=64, description="The `next` cursor of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONBytesResponse:
    """Audit records, newest first. Admins see all; a tenant token only its tenant's."""
    if caller.role is Role.TENANT:
        if tenant_id not in (None, caller.tenant_id):
            raise Forbidden("a tenant token reads only its own tenant's audit records")
        tenant_id = caller.tenant_id
    elif caller.role is not Role.ADMIN:
        raise Forbidden("only admin and tenant tokens read the audit log")
    page = await hub.audit.query(
        tenant_id=tenant_id, actor=actor, action=action, before=before, limit=limit
    )
    return json_response(page)
