"""The directory of provisioned tenants: their keys and records (read side, fed by the view).

A tenant is one key, ``tenants/<tenant_id>``, holding JSON with at least
``subscription_tier`` (discovery reads that key for callers that send ``x-tenant-id``
without a tier). Every replica's view carries the key, so a tenant provisioned on one
replica is usable by the next request on any replica once that replica's watch has the
write (the writing replica waits for it before answering). The writes are
:mod:`facade.tenancy.tenant_service`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from adapters import EventType, KeyValue, WatchEvent
from shared.errors import TenantNotFound

log = logging.getLogger("central_hub.tenants")

TENANTS_PREFIX = "tenants/"
RESERVED_TENANT_IDS = frozenset({"watch", "history", "webhooks", "rollback", "global", "tiers"})
"""Ids that would collide with literal routes under ``/config/``."""


def tenant_key(tenant_id: str) -> str:
    """The key of one tenant's record."""
    return f"{TENANTS_PREFIX}{tenant_id}"


@dataclass(frozen=True, slots=True)
class Tenant:
    """One provisioned tenant as stored, plus the revision of its record."""

    tenant_id: str
    subscription_tier: str
    company_id: str
    created_at: str
    updated_at: str
    revision: int

    def to_record(self) -> dict[str, Any]:
        """The stored JSON form."""
        return {
            "tenant_id": self.tenant_id,
            "subscription_tier": self.subscription_tier,
            "company_id": self.company_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def public(self) -> dict[str, Any]:
        """The API form: the record plus its version (the record's backend revision)."""
        return self.to_record() | {"version": self.revision}

    @classmethod
    def from_kv(cls, kv: KeyValue) -> Tenant | None:
        """Parse a stored record; ``None`` (and a log line) for an unreadable one."""
        try:
            data = orjson.loads(kv.value)
            tenant_id = kv.key[len(TENANTS_PREFIX) :]
            return cls(
                tenant_id=tenant_id,
                subscription_tier=str(data["subscription_tier"]),
                company_id=str(data.get("company_id") or tenant_id),
                created_at=str(data.get("created_at") or ""),
                updated_at=str(data.get("updated_at") or ""),
                revision=kv.mod_revision,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable tenant record %s: %s", kv.key, exc)
            return None


class TenantDirectory:
    """Every provisioned tenant, kept current by the view (a :class:`ViewListener`)."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.on_change: list[Callable[[], None]] = []

    def reset(self, items: dict[str, KeyValue]) -> None:
        """Rebuild from a snapshot of ``tenants/``."""
        self.tenants = {}
        for kv in items.values():
            tenant = Tenant.from_kv(kv)
            if tenant is not None:
                self.tenants[tenant.tenant_id] = tenant
        self._changed()

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """Apply one change under ``tenants/``."""
        tenant_id = event.key[len(TENANTS_PREFIX) :]
        if event.type is EventType.PUT:
            kv = KeyValue(event.key, event.value or b"", event.revision, event.revision)
            tenant = Tenant.from_kv(kv)
            if tenant is not None:
                self.tenants[tenant_id] = tenant
        else:
            self.tenants.pop(tenant_id, None)
        self._changed()

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def get(self, tenant_id: str) -> Tenant | None:
        """One tenant, or ``None``."""
        return self.tenants.get(tenant_id)

    def require(self, tenant_id: str) -> Tenant:
        """One tenant; raises TenantNotFound."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotFound(
                f"no tenant {tenant_id!r} is provisioned", details={"tenant_id": tenant_id}
            )
        return tenant
