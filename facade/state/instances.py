"""Registration, heartbeats and deregistration: the catalog's write side."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import orjson

from adapters import Backend, KeyValue, catalog_key
from facade.models import Heartbeat, ServiceRegistration
from facade.state.catalog import Instance, draining_key, health_key
from facade.state.check_spec import CheckSpec
from facade.state.view import StateView
from shared.errors import InstanceNotFound, InvalidRequest, LeaseNotFound
from shared.timestamps import utc_now

log = logging.getLogger("central_hub.registry")

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def derive_instance_id(name: str, host: str, port: int) -> str:
    """A stable instance id, so re-registering the same endpoint is idempotent."""
    return _UNSAFE_ID_CHARS.sub("_", f"{name}-{host}-{port}").strip("._-")[:128]


class RegistryService:
    """Writes catalog records to the backend and waits until this replica's view has them."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        *,
        default_ttl: int | None,
        visibility_timeout: float,
    ) -> None:
        self.backend = backend
        self.view = view
        self.default_ttl = default_ttl
        self.visibility_timeout = visibility_timeout

    def _current(self, service: str, instance_id: str) -> Instance | None:
        kv = self.view.get(catalog_key(service, instance_id))
        if kv is None:
            return None
        return Instance.from_record(orjson.loads(kv.value), revision=kv.mod_revision)

    async def _visible(self, revision: int | None) -> None:
        if revision is not None and not await self.view.wait_for(revision, self.visibility_timeout):
            log.warning("write at revision %d not yet visible in this replica's view", revision)

    async def _shown(self, key: str, shown: Callable[[KeyValue | None], bool]) -> None:
        """Wait (bounded) until the view shows the write to ``key`` itself.

        Reaching the write's revision is not always enough: Consul's KV and catalog feeds
        share one index space but arrive separately, so the view can pass a catalog
        write's index through a KV event before the catalog event itself is applied.
        """
        if shown(self.view.get(key)):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.visibility_timeout
        while loop.time() < deadline:
            await asyncio.sleep(0.005)
            if shown(self.view.get(key)):
                return
        log.warning("write to %s not yet shown in this replica's view", key)

    async def register(self, reg: ServiceRegistration) -> dict[str, Any]:
        """Create or refresh one instance; idempotent for the same instance id."""
        instance_id = reg.instance_id or derive_instance_id(reg.name, reg.host, reg.port)
        existing = self._current(reg.name, instance_id)
        ttl = reg.ttl if reg.ttl is not None else self.default_ttl
        # The check is resolved here, defaults included, and stored with the record: the
        # hub's prober and a backend that runs checks itself (Consul) then run the same one.
        check = CheckSpec.resolve(
            reg.check.model_dump() if reg.check is not None else None,
            protocol=reg.protocol,
            ttl=ttl,
        )
        if check.kind == "ttl" and ttl is None:
            raise InvalidRequest(
                "a ttl check needs a ttl: give the registration a ttl (seconds)",
                details={"errors": [{"field": "check.kind", "problem": "ttl check without ttl"}]},
            )
        lease_id: int | None = None
        if ttl is not None:
            if existing is not None and existing.lease is not None and existing.ttl == ttl:
                try:
                    await self.backend.keep_alive(existing.lease)
                    lease_id = existing.lease
                except LeaseNotFound:
                    lease_id = None
            if lease_id is None:
                lease_id = (await self.backend.grant_lease(ttl)).id
        instance = Instance(
            instance_id=instance_id,
            service_name=reg.name,
            host=reg.host,
            port=reg.port,
            protocol=reg.protocol,
            health_endpoint=reg.health_endpoint,
            tenant_capable=reg.tenant_capable,
            subscription_requirements=(
                tuple(reg.subscription_requirements) if reg.subscription_requirements else None
            ),
            resource_tier=reg.resource_tier,
            weight=reg.weight,
            version=reg.version,
            tags=tuple(reg.tags),
            meta=dict(reg.meta),
            ttl=ttl,
            registered_at=existing.registered_at if existing else utc_now(),
            load=existing.load if existing else None,
            lease=lease_id,
            check=check,
            backup=reg.backup.model_dump() if reg.backup is not None else None,
        )
        revision = await self.backend.put_instance(
            reg.name, instance_id, orjson.dumps(instance.to_record()), lease=lease_id
        )
        if existing is not None and existing.lease not in (None, lease_id):
            # The record is bound to the new lease now; the old one only holds nothing.
            assert existing.lease is not None
            await self.backend.revoke_lease(existing.lease)
        await self._visible(revision)
        await self._shown(
            catalog_key(reg.name, instance_id),
            lambda kv: kv is not None and kv.mod_revision >= revision,
        )
        return {
            "instance_id": instance_id,
            "service_name": reg.name,
            "revision": revision,
            "ttl": ttl,
            "created": existing is None,
        }

    async def deregister(self, service: str, instance_id: str) -> dict[str, Any]:
        """Remove one instance (and its lease and health record)."""
        existing = self._current(service, instance_id)
        revision = await self.backend.delete_instance(service, instance_id)
        if revision is None:
            raise InstanceNotFound(
                f"service {service!r} has no instance {instance_id!r}",
                details={"service_name": service, "instance_id": instance_id},
            )
        if self.view.get(health_key(service, instance_id)) is not None:
            revision = await self.backend.delete(health_key(service, instance_id)) or revision
        if existing is not None and existing.lease is not None:
            await self.backend.revoke_lease(existing.lease)
        await self._visible(revision)
        if existing is not None:
            await self._shown(
                catalog_key(service, instance_id),
                lambda kv: kv is None or kv.mod_revision != existing.revision,
            )
        return {"deregistered": True, "service_name": service, "instance_id": instance_id}

    async def heartbeat(self, service: str, instance_id: str, beat: Heartbeat) -> dict[str, Any]:
        """Renew an instance's TTL and record the load it reports."""
        existing = self._current(service, instance_id)
        if existing is None:
            raise InstanceNotFound(
                f"service {service!r} has no instance {instance_id!r}; register again",
                details={"service_name": service, "instance_id": instance_id},
            )
        if existing.lease is not None:
            try:
                await self.backend.keep_alive(existing.lease)
            except LeaseNotFound as exc:
                raise LeaseNotFound(
                    f"instance {instance_id!r} missed its TTL and expired; register again",
                    details={"service_name": service, "instance_id": instance_id},
                ) from exc
        if beat.load is not None and beat.load != existing.load:
            record = existing.to_record() | {"load": beat.load}
            revision = await self.backend.put_instance(
                service, instance_id, orjson.dumps(record), lease=existing.lease
            )
            await self._visible(revision)
        # A deployment draining this instance tells it here (BaseService.on_draining).
        mark = self.view.get(draining_key(service, instance_id))
        desired = orjson.loads(mark.value).get("desired_version") if mark is not None else None
        return {
            "instance_id": instance_id,
            "service_name": service,
            "ttl": existing.ttl,
            "draining": mark is not None,
            "desired_version": desired,
        }
