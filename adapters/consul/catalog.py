"""Hub instance records as Consul agent services and checks, and back."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import consul
from consul.callback import CB

from adapters.base import CATALOG_PREFIX, url_host
from adapters.consul.sessions import ConsulSessions
from shared.errors import BackendTimeout, Conflict, InvalidRequest

STATUS_MAP = {"passing": "healthy", "warning": "degraded", "critical": "critical"}
_STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 2}

# Meta keys the hub writes on its own registrations. A service registered directly with
# Consul may set the starred ones to opt in to hub semantics (see docs/consul.md).
META_MANAGED = "hub-managed"
NATIVE_META_KEYS = {
    "hub-subscription-requirements": "* comma-separated tiers, e.g. 'pro,enterprise'; "
    "absent or empty: public",
    "hub-resource-tier": "* basic | premium | enterprise (default basic)",
    "hub-tenant-capable": "* 'true' if the service accepts tenant context headers",
    "hub-protocol": "* http | https | grpc | grpcs | tcp | ws | wss (default http)",
    "hub-health-endpoint": "* path of the HTTP health endpoint (default /health)",
    "hub-version": "* version string (falls back to Meta 'version')",
}
_STRING_FIELDS = {
    "protocol": "hub-protocol",
    "health_endpoint": "hub-health-endpoint",
    "resource_tier": "hub-resource-tier",
    "version": "hub-version",
    "registered_at": "hub-registered-at",
}
_JSON_FIELDS = {"ttl": "hub-ttl", "load": "hub-load", "lease": "hub-lease", "check": "hub-check"}
_NATIVE_FIELDS = {"instance_id", "service_name", "host", "port", "weight", "tags", "meta"}
_KNOWN_FIELDS = (
    _NATIVE_FIELDS
    | set(_STRING_FIELDS)
    | set(_JSON_FIELDS)
    | {"subscription_requirements", "tenant_capable"}
)
_MAX_META_VALUE = 512


class ConsulCatalog(ConsulSessions):
    """Instances registered as services of the hub's Consul agent."""

    async def put_instance(
        self, service: str, instance_id: str, record: bytes, *, lease: int | None = None
    ) -> int:
        try:
            data = json.loads(record)
        except ValueError as exc:
            raise InvalidRequest(f"instance record is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidRequest("instance record must be a JSON object")
        if not service or not instance_id or "/" in service or "/" in instance_id:
            raise InvalidRequest("service and instance id must be non-empty, without '/'")
        if lease is not None:
            await self._session_of(lease)  # raises LeaseNotFound before registering
            data["lease"] = lease
        registration = registration_for(service, instance_id, data)
        expected = record_from_service(registration_as_catalog_entry(registration), node_address="")
        key = f"{CATALOG_PREFIX}{service}/{instance_id}"

        def register(c: consul.Consul) -> None:
            c.http.put(
                CB.boolean(),
                "/v1/agent/service/register",
                params=[("replace-existing-checks", "true")],
                data=json.dumps(registration),
                headers=c.prepare_headers(),
            )

        before = self._catalog_state.get(key)
        seen_before = before.mod_revision if before is not None else 0
        await self._run(self._call, register)
        self._catalog_dirty.set()

        def registered() -> bool:
            # Ours, or a newer registration of the same instance that superseded it
            # (concurrent re-registrations: the last writer wins, as on every backend).
            current = self._catalog_state.get(key)
            return current is not None and (
                _same_record(current.value, expected) or current.mod_revision > seen_before
            )

        if not await self._wait_for(registered):
            raise BackendTimeout(
                f"Consul accepted instance {instance_id!r} but its catalog did not show it "
                f"within {self.write_visibility_timeout}s (agent anti-entropy lagging?)"
            )
        return self._catalog_state[key].mod_revision

    async def delete_instance(self, service: str, instance_id: str) -> int | None:
        key = f"{CATALOG_PREFIX}{service}/{instance_id}"

        def local(c: consul.Consul) -> dict[str, Any] | None:
            found: dict[str, Any] | None = c.http.get(
                CB.json(),
                f"/v1/agent/service/{instance_id}",
                headers=c.prepare_headers(),
            )
            return found

        mine = await self._run(self._call, local)
        current = self._catalog_state.get(key)
        if mine is None or mine.get("Service") != service:
            if current is None:
                return None
            raise Conflict(
                f"instance {instance_id!r} is registered through another Consul agent; "
                "deregister it there",
                details={"service": service, "instance_id": instance_id},
            )

        def deregister(c: consul.Consul) -> None:
            c.http.put(
                CB.boolean(),
                f"/v1/agent/service/deregister/{instance_id}",
                headers=c.prepare_headers(),
            )

        await self._run(self._call, deregister)
        self._catalog_dirty.set()
        if current is None:
            # Registered on the agent but never seen in the catalog: wait for the removal
            # to be visible and report the catalog's index.
            return max(self._catalog_index, self._kv_index)
        return await self._deleted_revision(key, current.mod_revision, lambda: self._catalog_state)


def registration_for(service: str, instance_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The ``/v1/agent/service/register`` body for a hub instance record."""
    meta: dict[str, str] = {}
    for key, value in (record.get("meta") or {}).items():
        if str(key).startswith(("hub-", "consul-")):
            raise InvalidRequest(f"meta key {key!r} is reserved (hub-*/consul-*)")
        meta[str(key)] = str(value)
    meta[META_MANAGED] = "true"
    for name, meta_key in _STRING_FIELDS.items():
        if record.get(name) is not None:
            meta[meta_key] = str(record[name])
    for name, meta_key in _JSON_FIELDS.items():
        if record.get(name) is not None:
            meta[meta_key] = json.dumps(record[name], separators=(",", ":"), sort_keys=True)
    reqs = record.get("subscription_requirements")
    if reqs:
        meta["hub-subscription-requirements"] = ",".join(str(t) for t in reqs)
    meta["hub-tenant-capable"] = "true" if record.get("tenant_capable", True) else "false"
    extra = {k: v for k, v in record.items() if k not in _KNOWN_FIELDS}
    if extra:
        meta["hub-extra"] = json.dumps(extra, separators=(",", ":"), sort_keys=True)
    too_long = [k for k, v in meta.items() if len(v) > _MAX_META_VALUE or len(k) > 128]
    if too_long:
        raise InvalidRequest(f"Consul Meta values are limited to 512 characters: {too_long}")
    if len(meta) > 64:
        raise InvalidRequest("Consul allows at most 64 Meta keys per service")
    host = str(record.get("host") or "")
    port = int(record.get("port") or 0)
    body: dict[str, Any] = {
        "ID": instance_id,
        "Name": service,
        "Tags": [str(t) for t in record.get("tags") or []],
        "Address": host,
        "Port": port,
        "Meta": meta,
        # Consul requires Passing >= 1; Warning instances get the minimum share.
        "Weights": {"Passing": max(1, int(record.get("weight") or 1)), "Warning": 1},
    }
    check = _check_for(record, host, port)
    if check is not None:
        body["Check"] = check
    return body


def _duration(seconds: Any) -> str:
    """A Go duration string Consul parses (sub-second intervals included)."""
    return f"{float(seconds):g}s"


def _check_for(record: dict[str, Any], host: str, port: int) -> dict[str, Any] | None:
    spec = record.get("check")
    if not isinstance(spec, dict):
        return None
    kind = str(spec.get("kind") or "http")
    interval = _duration(spec.get("interval") or 10)
    # New Consul checks start critical; the hub counts an unchecked instance as healthy
    # until its first result, so the check starts passing as on the other backends.
    check: dict[str, Any] = {"Name": f"central-hub {kind} check", "Status": "passing"}
    if kind == "http":
        scheme = "https" if record.get("protocol") in ("https", "wss", "grpcs") else "http"
        check.update(
            HTTP=f"{scheme}://{url_host(host)}:{port}{record.get('health_endpoint') or '/health'}",
            Method="GET",
            Interval=interval,
        )
    elif kind == "tcp":
        check.update(TCP=f"{url_host(host)}:{port}", Interval=interval)
    elif kind == "ttl":
        check["TTL"] = _duration(record.get("ttl") or spec.get("interval") or 30)
    else:
        raise InvalidRequest(f"unknown check kind {kind!r} (http, tcp or ttl)")
    if kind != "ttl" and spec.get("timeout"):
        check["Timeout"] = _duration(spec["timeout"])
    if spec.get("failures_before_critical"):
        check["FailuresBeforeCritical"] = int(spec["failures_before_critical"])
    if spec.get("successes_before_passing"):
        check["SuccessBeforePassing"] = int(spec["successes_before_passing"])
    if spec.get("deregister_after"):
        # Consul's reaper runs about every 30 s and refuses less than one minute.
        check["DeregisterCriticalServiceAfter"] = _duration(max(60, spec["deregister_after"]))
    return check


def registration_as_catalog_entry(registration: dict[str, Any]) -> dict[str, Any]:
    """How a registration body reads back as a catalog ``Service`` object."""
    return {
        "ID": registration["ID"],
        "Service": registration["Name"],
        "Tags": registration.get("Tags") or [],
        "Address": registration.get("Address") or "",
        "Port": registration.get("Port") or 0,
        "Meta": registration.get("Meta") or {},
        "Weights": registration.get("Weights") or {"Passing": 1, "Warning": 1},
    }


def record_from_service(service: dict[str, Any], *, node_address: str) -> dict[str, Any]:
    """The hub's instance record for a catalog ``Service`` object (hub-made or native)."""
    meta: dict[str, str] = dict(service.get("Meta") or {})
    managed = meta.get(META_MANAGED) == "true"
    reqs_text = meta.get("hub-subscription-requirements", "")
    reqs = [t.strip() for t in reqs_text.split(",") if t.strip()] or None
    weights = service.get("Weights") or {}
    record: dict[str, Any] = {
        "instance_id": str(service.get("ID") or ""),
        "service_name": str(service.get("Service") or ""),
        "host": str(service.get("Address") or node_address),
        "port": int(service.get("Port") or 0),
        "protocol": meta.get("hub-protocol", "http"),
        "health_endpoint": meta.get("hub-health-endpoint", "/health"),
        # Native services never asked for tenant headers: safe default is "not capable".
        "tenant_capable": meta.get("hub-tenant-capable", "false") == "true",
        "subscription_requirements": reqs,
        "resource_tier": meta.get("hub-resource-tier", "basic"),
        "weight": int(weights.get("Passing") or 1),
        "version": meta.get("hub-version", meta.get("version")),
        "tags": list(service.get("Tags") or []),
        "meta": {k: v for k, v in meta.items() if not k.startswith("hub-")},
        "ttl": None,
        "registered_at": meta.get("hub-registered-at", ""),
    }
    for name, meta_key in _JSON_FIELDS.items():
        if meta_key in meta:
            with contextlib.suppress(ValueError):
                record[name] = json.loads(meta[meta_key])
    if "hub-extra" in meta:
        with contextlib.suppress(ValueError):
            extra = json.loads(meta["hub-extra"])
            if isinstance(extra, dict):
                record.update({k: v for k, v in extra.items() if k not in record})
    if not managed:
        record["source"] = "consul"
    return record


def _same_record(stored: bytes, expected: dict[str, Any]) -> bool:
    try:
        current = json.loads(stored)
    except ValueError:
        return False
    # The address Consul reports may be the node's when the registration gave none.
    compare = {k: v for k, v in expected.items() if k not in ("host", "instance_id")}
    return all(current.get(k) == v for k, v in compare.items())


def aggregate_health(checks: list[dict[str, Any]]) -> tuple[str, str, int]:
    """Worst status of an instance's node and service checks, their outputs, newest index."""
    if not checks:
        return "passing", "", 0
    worst = max(checks, key=lambda c: _STATUS_RANK.get(str(c.get("Status")), 2))
    status = str(worst.get("Status") or "critical")
    status = status if status in STATUS_MAP else "critical"
    output = "; ".join(
        f"{c.get('Name') or c.get('CheckID')}: {str(c.get('Output') or '').strip()}"
        for c in checks
        if str(c.get("Output") or "").strip()
    )
    newest = max(int(c.get("ModifyIndex") or 0) for c in checks)
    return status, output, newest
