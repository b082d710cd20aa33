"""Tenant writes: provisioning, changes and removal (with the tenant's config and usage)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from adapters import Backend
from facade.state.view import StateView
from facade.tenancy.config_store import ConfigService
from facade.tenancy.tenant_directory import TenantDirectory, tenant_key
from shared.errors import PreconditionFailed, RevisionConflict, TenantExists, TenantNotFound
from shared.timestamps import utc_now

log = logging.getLogger("central_hub.tenants")


class TenantService:
    """Provisions, changes and removes tenants (writes go to the backend)."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        directory: TenantDirectory,
        config: ConfigService,
        *,
        cleanup_prefixes: Sequence[Callable[[str], str]],
        visibility_timeout: float,
    ) -> None:
        """``config``: removal resets the tenant's overrides there; ``cleanup_prefixes``:
        the key prefixes (per tenant id) removed with the tenant (usage, webhooks)."""
        self.backend = backend
        self.view = view
        self.directory = directory
        self.config = config
        self.cleanup_prefixes = tuple(cleanup_prefixes)
        self.visibility_timeout = visibility_timeout

    async def _visible(self, revision: int) -> None:
        if not await self.view.wait_for(revision, self.visibility_timeout):
            log.warning("write at revision %d not yet visible in this replica's view", revision)

    async def await_visible(self, tenant_id: str) -> None:
        """Let this replica's view catch up if the tenant exists but is not in it yet.

        Only a miss costs a backend read, so a tenant provisioned on another replica is
        usable by the next request here, not only after this replica's watch delivers it.
        """
        if self.directory.get(tenant_id) is not None:
            return
        kv = await self.backend.get(tenant_key(tenant_id))
        if kv is not None:
            await self.view.wait_for(kv.mod_revision, self.visibility_timeout)

    def list(self) -> list[dict[str, Any]]:
        """Every tenant, ordered by id."""
        return [t.public() for _, t in sorted(self.directory.tenants.items())]

    def get(self, tenant_id: str) -> dict[str, Any]:
        """One tenant; raises TenantNotFound."""
        return self.directory.require(tenant_id).public()

    async def create(
        self, tenant_id: str, subscription_tier: str, company_id: str | None
    ) -> dict[str, Any]:
        """Provision a tenant; TenantExists if the id is taken (create-only CAS)."""
        now = utc_now()
        record = {
            "tenant_id": tenant_id,
            "subscription_tier": subscription_tier,
            "company_id": company_id or tenant_id,
            "created_at": now,
            "updated_at": now,
        }
        try:
            revision = await self.backend.put(
                tenant_key(tenant_id), orjson.dumps(record), if_revision=0
            )
        except RevisionConflict:
            raise TenantExists(
                f"tenant {tenant_id!r} is already provisioned", details={"tenant_id": tenant_id}
            ) from None
        await self._visible(revision)
        return record | {"version": revision}

    async def update(
        self,
        tenant_id: str,
        *,
        subscription_tier: str | None,
        company_id: str | None,
        if_match: set[int] | None,
    ) -> dict[str, Any]:
        """Change a tenant's tier or company id, compare-and-set on its record.

        ``if_match``: the record versions the caller accepts (412 otherwise); without it
        the change is retried on concurrent writes so no field is lost.
        """
        for _ in range(20):
            kv = await self.backend.get(tenant_key(tenant_id))
            if kv is None:
                raise TenantNotFound(
                    f"no tenant {tenant_id!r} is provisioned", details={"tenant_id": tenant_id}
                )
            if if_match is not None and kv.mod_revision not in if_match:
                raise PreconditionFailed(
                    "the tenant changed since the version in If-Match",
                    details={"tenant_id": tenant_id, "current_version": kv.mod_revision},
                )
            record = orjson.loads(kv.value)
            changes = {
                name: value
                for name, value in (
                    ("subscription_tier", subscription_tier),
                    ("company_id", company_id),
                )
                if value is not None and record.get(name) != value
            }
            if not changes:  # nothing to change: no new version for subscribers
                return dict(record) | {"version": kv.mod_revision}
            record |= changes
            record["updated_at"] = utc_now()
            try:
                revision = await self.backend.put(
                    kv.key, orjson.dumps(record), if_revision=kv.mod_revision
                )
            except RevisionConflict:
                if if_match is not None:
                    raise PreconditionFailed(
                        "the tenant changed concurrently", details={"tenant_id": tenant_id}
                    ) from None
                continue
            await self._visible(revision)
            return dict(record) | {"version": revision}
        raise PreconditionFailed(
            "the tenant kept changing; try again", details={"tenant_id": tenant_id}
        )

    async def delete(self, tenant_id: str, *, author: str) -> dict[str, Any]:
        """Remove a tenant with its config overrides, usage counters and webhooks.

        The overrides are first reset to empty as a new config version (kept in history
        with action ``tenant_deleted``) and only then is the record deleted, so the
        tenant's effective config version never goes backwards for a subscriber.
        """
        if await self.backend.get(tenant_key(tenant_id)) is None:
            raise TenantNotFound(
                f"no tenant {tenant_id!r} is provisioned", details={"tenant_id": tenant_id}
            )
        await self.config.reset_tenant_overrides(tenant_id, author=author)
        for prefix_of in self.cleanup_prefixes:
            snapshot = await self.backend.range(prefix_of(tenant_id))
            for kv in snapshot.items:
                await self.backend.delete(kv.key)
        revision = await self.backend.delete(tenant_key(tenant_id))
        # An override write that passed its tenant check just before the delete may have
        # landed after the reset; writes after the delete are refused.
        revision = await self.config.ensure_tenant_overrides_reset(tenant_id) or revision
        if revision is not None:
            await self._visible(revision)
        return {"deleted": True, "tenant_id": tenant_id}
