"""Layered config: reads, versioned writes, history, rollback, push (SSE, long poll, webhooks).

Versions are backend revisions (see :mod:`facade.tenancy.config_store`): ``ETag`` on reads,
``If-Match`` on writes (412 on conflict), ``X-Hub-Index`` and ``?index=&wait=`` for
Consul-style blocking reads, and the SSE event ``id`` (``Last-Event-ID`` resumes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Header, Path, Query, Request
from starlette.responses import StreamingResponse

from facade.access.tokens import Principal, Role
from facade.errors import error_doc
from facade.models import TENANT_ID_PATTERN
from facade.responses import JSONBytesResponse, json_response
from facade.routers.dependencies import Configurator, HubDep, Reader, parse_tenant_context
from facade.routers.http_conditions import MAX_VERSION, etag, parse_if_match, parse_wait
from facade.routers.tenants import author_of, for_tenant
from facade.runtime import Hub
from facade.tenancy.api_models import WebhookCreate
from facade.tenancy.config_keys import LayerScope, Scope, TierScope, WriteMode
from shared import errors
from shared.tenancy import TIERS, Tier

router = APIRouter(tags=["config"])

TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="Tenant id.")]
TierPath = Annotated[Tier, Path(description="free, pro or enterprise.")]
VersionPath = Annotated[
    int, Path(ge=1, le=MAX_VERSION, description="A version listed by .../history.")
]
IndexQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_VERSION,
        description="Blocking read: answer once the version exceeds this index.",
    ),
]
WaitQuery = Annotated[
    str | None, Query(description="Longest block with ?index= (e.g. 30s; default 5m, max 10m).")
]
ConfigBody = Annotated[dict[str, Any], Body(description="Config sections (a JSON object).")]
IfMatch = Annotated[
    str | None, Header(description="The version (ETag) the change is based on; 412 if stale.")
]


def _asserted_tier(request: Request, caller: Principal) -> str | None:
    """The tier the caller asserts, if its token may assert tenant context at all."""
    return parse_tenant_context(request, caller, None).tier


def _read(body: dict[str, Any], *, vary: bool = False) -> JSONBytesResponse:
    headers = {"ETag": etag(body["version"]), "X-Hub-Index": str(body["version"])}
    if body.get("stale"):
        headers["X-Hub-Stale"] = "true"
    if vary:  # an unprovisioned tenant's answer depends on the asserted tier
        headers["Vary"] = "x-subscription-tier"
    return json_response(body, headers=headers)


def _written(result: dict[str, Any]) -> JSONBytesResponse:
    return json_response(result, headers={"ETag": etag(result["effective_version"])})


async def _write(
    hub: Hub,
    request: Request,
    caller: Principal,
    scope: LayerScope,
    mode: WriteMode,
    *,
    body: dict[str, Any] | None = None,
    version: int | None = None,
    if_match: str | None,
) -> JSONBytesResponse:
    if isinstance(scope, str):
        for_tenant(caller, request, scope)
    result = await hub.config.write(
        scope,
        mode,
        body=body,
        restore_version=version,
        if_match=parse_if_match(if_match),
        author=author_of(caller, request),
        correlation_id=parse_tenant_context(request, caller, None).correlation_id,
    )
    return _written(result)


async def _write_global(
    hub: Hub,
    request: Request,
    caller: Principal,
    mode: Literal["put", "patch"],
    body: dict[str, Any],
    if_match: str | None,
) -> JSONBytesResponse:
    result = await hub.config.write_global(
        mode,
        body,
        if_match=parse_if_match(if_match),
        author=author_of(caller, request),
        correlation_id=parse_tenant_context(request, caller, None).correlation_id,
    )
    return _written(result)


async def _long_poll(
    hub: Hub, caller: Principal, scope: Scope, index: int, wait: str | None, tier: str | None
) -> None:
    """Block until the version passes ``index``; 401 at once if the caller's grant ends."""
    timeout = parse_wait(wait)
    grant = hub.grants.open(caller)
    try:
        await hub.config.wait_past(scope, index, timeout, tier, until=grant.ended)
    finally:
        hub.grants.close(grant)
    if grant.ended.is_set():
        raise grant.error()


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    if not raw.strip().isdigit() or len(raw.strip()) > 16 or int(raw) > MAX_VERSION:
        raise errors.InvalidRequest(
            "Last-Event-ID must be a version number", details={"value": raw[:50]}
        )
    return int(raw)


async def _sse(hub: Hub, scope: Scope, request: Request, caller: Principal) -> StreamingResponse:
    if scope is not None:
        for_tenant(caller, request, scope)
    after = _last_event_id(request)
    tier = _asserted_tier(request, caller)
    grant = hub.grants.open(caller)
    events = hub.config.subscribe(
        scope,
        asserted_tier=tier,
        after=after,
        keepalive=hub.settings.config_keepalive,
        until=grant.ended,
    )

    async def encode() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            async for body in events:
                if body is None:
                    yield b": keep-alive\n\n"
                    continue
                event = orjson.dumps(body)
                yield b"id: %d\nevent: config\ndata: %s\n\n" % (body["version"], event)
            if grant.ended.is_set():  # the token was revoked or expired, or its tenant removed
                yield b"event: error\ndata: %s\n\n" % orjson.dumps(grant.error().to_payload())
        finally:
            hub.grants.close(grant)

    return StreamingResponse(
        encode(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- global layer (literal paths first: they would otherwise match /config/{tenant_id}) ---


@router.get("/config")
async def get_global_config(
    hub: HubDep, caller: Reader, index: IndexQuery = None, wait: WaitQuery = None
) -> JSONBytesResponse:
    """The global layer; with ``?index=N`` blocks until its version exceeds N."""
    if index is not None:
        await _long_poll(hub, caller, None, index, wait, None)
    return _read(hub.config.global_config())


@router.put("/config", responses=error_doc(errors.InvalidRequest, errors.PreconditionFailed))
async def put_global_config(
    body: ConfigBody, request: Request, hub: HubDep, caller: Configurator, if_match: IfMatch = None
) -> JSONBytesResponse:
    """Replace the global layer (the spec's ``update_global_config``); a new version.

    Per-tier values (``{"rate_limits": {"pro_tier": 200}}``) go to the tiers' layers:
    a number sets the tier's ``rate_limits.api_calls_per_hour``.
    """
    return await _write_global(hub, request, caller, "put", body, if_match)


@router.patch("/config", responses=error_doc(errors.InvalidRequest, errors.PreconditionFailed))
async def patch_global_config(
    body: ConfigBody, request: Request, hub: HubDep, caller: Configurator, if_match: IfMatch = None
) -> JSONBytesResponse:
    """Change the global layer by JSON merge patch (``null`` removes a key).

    Per-tier values go to the tiers' layers, as in ``PUT /config``.
    """
    return await _write_global(hub, request, caller, "patch", body, if_match)


@router.get("/config/watch", response_class=StreamingResponse)
async def watch_global_config(request: Request, hub: HubDep, caller: Reader) -> StreamingResponse:
    """Server-sent events: every new global version (``id`` = version; resumable)."""
    return await _sse(hub, None, request, caller)


@router.get("/config/history")
async def global_config_history(hub: HubDep, _: Reader) -> JSONBytesResponse:
    """Kept global versions, newest first, with author and time."""
    return json_response(hub.config.history(None))


@router.post(
    "/config/rollback/{version}",
    responses=error_doc(errors.ConfigVersionNotFound, errors.PreconditionFailed),
)
async def rollback_global_config(
    version: VersionPath,
    request: Request,
    hub: HubDep,
    caller: Configurator,
    if_match: IfMatch = None,
) -> JSONBytesResponse:
    """Restore an earlier global version as a new version."""
    return await _write(hub, request, caller, None, "rollback", version=version, if_match=if_match)


# -- tier-scoped global layers ---------------------------------------------------------


@router.get("/config/tiers")
async def list_tier_configs(hub: HubDep, _: Reader) -> JSONBytesResponse:
    """Every tier's global layer."""
    return json_response({"tiers": {tier: hub.config.tier_config(tier) for tier in TIERS}})


@router.get("/config/tiers/{tier}")
async def get_tier_config(tier: TierPath, hub: HubDep, _: Reader) -> JSONBytesResponse:
    """One tier's global layer (merged after the global layer for that tier's tenants)."""
    return _read(hub.config.tier_config(tier))


@router.put(
    "/config/tiers/{tier}", responses=error_doc(errors.InvalidRequest, errors.PreconditionFailed)
)
async def put_tier_config(
    tier: TierPath,
    body: ConfigBody,
    request: Request,
    hub: HubDep,
    caller: Configurator,
    if_match: IfMatch = None,
) -> JSONBytesResponse:
    """Replace one tier's global layer; ``If-Match`` takes that layer's version."""
    scope = TierScope(tier)
    return await _write(hub, request, caller, scope, "put", body=body, if_match=if_match)


@router.patch(
    "/config/tiers/{tier}", responses=error_doc(errors.InvalidRequest, errors.PreconditionFailed)
)
async def patch_tier_config(
    tier: TierPath,
    body: ConfigBody,
    request: Request,
    hub: HubDep,
    caller: Configurator,
    if_match: IfMatch = None,
) -> JSONBytesResponse:
    """Change one tier's global layer by JSON merge patch (``null`` removes a key)."""
    scope = TierScope(tier)
    return await _write(hub, request, caller, scope, "patch", body=body, if_match=if_match)


@router.get("/config/tiers/{tier}/history")
async def tier_config_history(tier: TierPath, hub: HubDep, _: Reader) -> JSONBytesResponse:
    """Kept versions of one tier's global layer, newest first."""
    return json_response(hub.config.history(TierScope(tier)))


@router.post(
    "/config/tiers/{tier}/rollback/{version}",
    responses=error_doc(errors.ConfigVersionNotFound, errors.PreconditionFailed),
)
async def rollback_tier_config(
    tier: TierPath,
    version: VersionPath,
    request: Request,
    hub: HubDep,
    caller: Configurator,
    if_match: IfMatch = None,
) -> JSONBytesResponse:
    """Restore an earlier version of one tier's global layer as a new version."""
    scope = TierScope(tier)
    return await _write(hub, request, caller, scope, "rollback", version=version, if_match=if_match)


# -- webhooks ----------------------------------------------------------------------


@router.post("/config/webhooks", status_code=201, responses=error_doc(errors.TenantNotFound))
async def register_webhook(
    req: WebhookCreate, request: Request, hub: HubDep, _: Configurator
) -> JSONBytesResponse:
    """Register a URL for config changes; the answer holds the signing secret, once."""
    if req.tenant_id is not None:
        request.state.audit_tenant = req.tenant_id
        await hub.tenants.await_visible(req.tenant_id)
    result = await hub.webhooks.register(
        url=req.url, tenant_id=req.tenant_id, secret=req.secret, description=req.description
    )
    return json_response(result, status_code=201)


@router.get("/config/webhooks")
async def list_webhooks(
    hub: HubDep,
    caller: Reader,
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
) -> JSONBytesResponse:
    """Webhooks with their last delivery: state, attempts, status code, error.

    A tenant token sees only its own tenant's webhooks.
    """
    if caller.role is Role.TENANT:
        caller.require_tenant(tenant_id or str(caller.tenant_id))
        tenant_id = caller.tenant_id
    return json_response(hub.webhooks.list(tenant_id))


@router.get("/config/webhooks/{webhook_id}", responses=error_doc(errors.WebhookNotFound))
async def get_webhook(
    webhook_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], hub: HubDep, caller: Reader
) -> JSONBytesResponse:
    """One webhook with its delivery status."""
    hook = hub.webhooks.get(webhook_id)
    if caller.role is Role.TENANT and hook["tenant_id"] != caller.tenant_id:
        raise errors.WebhookNotFound(
            f"no webhook {webhook_id!r} is registered", details={"webhook_id": webhook_id}
        )
    return json_response(hook)


@router.delete("/config/webhooks/{webhook_id}", responses=error_doc(errors.WebhookNotFound))
async def delete_webhook(
    webhook_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], hub: HubDep, _: Configurator
) -> JSONBytesResponse:
    """Unregister a webhook."""
    return json_response(await hub.webhooks.delete(webhook_id))


# -- per tenant ---------------------------------------------------------------------


@router.get("/config/{tenant_id}")
async def get_tenant_config(
    tenant_id: TenantIdPath,
    request: Request,
    hub: HubDep,
    caller: Reader,
    index: IndexQuery = None,
    wait: WaitQuery = None,
) -> JSONBytesResponse:
    """The tenant's effective config, the spec's shape.

    Layers: tier defaults → global → the tier's global layer → the tenant's overrides.

    With ``?index=N`` (Consul style) the answer waits until the version exceeds N or
    ``wait`` passes; ``X-Hub-Index`` carries the version either way.
    """
    for_tenant(caller, request, tenant_id)
    tier = _asserted_tier(request, caller)
    if index is not None:
        await _long_poll(hub, caller, tenant_id, index, wait, tier)
    body = hub.config.effective(tenant_id, tier)
    return _read(body, vary=not body["provisioned"])


@router.put(
    "/config/{tenant_id}",
    responses=error_doc(errors.TenantNotFound, errors.InvalidRequest, errors.PreconditionFailed),
)
async def put_tenant_config(
    tenant_id: TenantIdPath,
    body: ConfigBody,
    request: Request,
    hub: HubDep,
    caller: Configurator,
    if_match: IfMatch = None,
) -> JSONBytesResponse:
    """Replace the tenant's overrides; ``If-Match`` takes its effective version."""
    return await _write(hub, request, caller, tenant_id, "put", body=body, if_match=if_match)


@router.patch(
    "/config/{tenant_id}",
    responses=error_doc(errors.TenantNotFound, errors.InvalidRequest, errors.PreconditionFailed),
)
async def patch_tenant_config(
    tenant_id: TenantIdPath,
    body: ConfigBody,
    request: Request,
    hub: HubDep,
    caller: Configurator,
    if_match: IfMatch = None,
) -> JSONBytesResponse:
    """Change the tenant's overrides by JSON merge patch (``null`` removes a key)."""
    return await _write(hub, request, caller, tenant_id, "patch", body=body, if_match=if_match)


@router.get("/config/{tenant_id}/watch", response_class=StreamingResponse)
async def watch_tenant_config(
    tenant_id: TenantIdPath, request: Request, hub: HubDep, caller: Reader
) -> StreamingResponse:
    """Server-sent events: the effective config at every new version (resumable)."""
    return await _sse(hub, tenant_id, request, caller)


@router.get("/config/{tenant_id}/overrides", responses=error_doc(errors.TenantNotFound))
async def tenant_overrides(
    tenant_id: TenantIdPath, request: Request, hub: HubDep, caller: Reader
) -> JSONBytesResponse:
    """The tenant's override layer alone."""
    for_tenant(caller, request, tenant_id)
    hub.tenant_directory.require(tenant_id)
    return _read(hub.config.overrides(tenant_id))


@router.get("/config/{tenant_id}/history", responses=error_doc(errors.TenantNotFound))
async def tenant_config_history(
    tenant_id: TenantIdPath, request: Request, hub: HubDep, caller: Reader
) -> JSONBytesResponse:
    """Kept versions of the tenant's overrides, newest first, with author and time."""
    for_tenant(caller, request, tenant_id)
    return json_response(hub.config.history(tenant_id))


@router.post(
    "/config/{tenant_id}/rollback/{version}",
    responses=error_doc(
        errors.TenantNotFound, errors.ConfigVersionNotFound, errors.PreconditionFailed
    ),
)
async def rollback_tenant_config(
    tenant_id: TenantIdPath,
    version: VersionPath,
    request: Request,
    hub: HubDep,
    caller: Configurator,
    if_match: IfMatch = None,
) -> JSONBytesResponse:
    """Restore an earlier version of the tenant's overrides as a new version."""
    return await _write(
        hub, request, caller, tenant_id, "rollback", version=version, if_match=if_match
    )
