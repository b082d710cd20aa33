"""Config webhooks: the hub POSTs every config change to registered URLs.

A webhook watches one scope: a tenant (its *effective* config: overrides, global config
and tier changes) or the global layer. Each delivery is a JSON body signed with
HMAC-SHA256 under the webhook's secret (``X-Hub-Signature: sha256=<hex>``), carrying the
complete config and its version, so a receiver that misses one delivery is made whole
by the next. Failed deliveries are retried with exponential backoff; every attempt's
outcome is stored in the backend and shown by ``GET /config/webhooks``.

Exactly one replica delivers each version: a replica claims the webhook's status key
with a compare-and-set before sending (the claim carries an expiry it renews while it
retries, so if that replica dies another one takes over). Keys::

    webhooks/global/<id>/hook            webhooks/tenant/<tenant>/<id>/hook
    webhooks/global/<id>/status          webhooks/tenant/<tenant>/<id>/status
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from adapters import Backend, KeyValue, WatchEvent
from facade.state.view import StateView
from facade.tasks import cancel_and_wait
from facade.tenancy.config_store import ChangeSignal, ConfigService, Scope
from facade.tenancy.tenant_directory import TenantDirectory
from shared.backoff import jittered_delay
from shared.errors import InvalidRequest, RevisionConflict, WebhookNotFound
from shared.timestamps import utc_now

log = logging.getLogger("central_hub.webhooks")

WEBHOOKS_PREFIX = "webhooks/"
SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_NAME = "config.changed"


def webhook_base(scope: Scope, webhook_id: str) -> str:
    """The key prefix of one webhook (its ``hook`` and ``status`` keys live under it)."""
    if scope is None:
        return f"{WEBHOOKS_PREFIX}global/{webhook_id}/"
    return f"{WEBHOOKS_PREFIX}tenant/{scope}/{webhook_id}/"


def tenant_webhooks_prefix(tenant_id: str) -> str:
    """Prefix of every webhook of one tenant (removed with the tenant)."""
    return f"{WEBHOOKS_PREFIX}tenant/{tenant_id}/"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value for ``body``: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the correct one for ``body`` (constant time)."""
    return hmac.compare_digest(sign(secret, body), signature)


@dataclass(frozen=True, slots=True)
class Webhook:
    """One registered webhook."""

    webhook_id: str
    scope: Scope
    url: str
    secret: str
    description: str
    created_at: str

    @property
    def base(self) -> str:
        """Key prefix of this webhook."""
        return webhook_base(self.scope, self.webhook_id)

    def record(self) -> dict[str, Any]:
        """Stored form (includes the secret; never answered by the API)."""
        return {
            "webhook_id": self.webhook_id,
            "tenant_id": self.scope,
            "url": self.url,
            "secret": self.secret,
            "description": self.description,
            "created_at": self.created_at,
        }

    @classmethod
    def from_kv(cls, kv: KeyValue) -> Webhook | None:
        """Parse a stored ``hook`` record."""
        try:
            data = orjson.loads(kv.value)
            return cls(
                webhook_id=str(data["webhook_id"]),
                scope=data.get("tenant_id"),
                url=str(data["url"]),
                secret=str(data["secret"]),
                description=str(data.get("description") or ""),
                created_at=str(data.get("created_at") or ""),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable webhook %s: %s", kv.key, exc)
            return None


class WebhookService:
    """Registration (backend writes), listing (view) and the delivery worker."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        tenants: TenantDirectory,
        config: ConfigService,
        *,
        visibility_timeout: float,
        max_attempts: int = 6,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        request_timeout: float = 5.0,
        claim_ttl: float = 30.0,
        rescan_interval: float = 1.0,
    ) -> None:
        self.backend = backend
        self.view = view
        self.tenants = tenants
        self.config = config
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.claim_ttl = claim_ttl
        self.rescan_interval = rescan_interval
        self.replica_id = uuid.uuid4().hex[:12]
        self._worker: asyncio.Task[None] | None = None
        self._deliveries: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self.registrations = ChangeSignal()
        """Set when a webhook is added on any replica (the view calls :meth:`apply`)."""

    # -- view listener (prefix ``webhooks/``): wakes the worker for new webhooks --------

    def reset(self, items: dict[str, KeyValue]) -> None:
        """A full resync: look at every webhook again."""
        self.registrations.notify()

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """A webhook was added or removed (status updates do not wake anyone)."""
        if event.key.endswith("/hook"):
            self.registrations.notify()

    # -- registration -------------------------------------------------------------

    def _hooks(self) -> list[Webhook]:
        hooks = []
        for kv in self.view.items(WEBHOOKS_PREFIX):
            if kv.key.endswith("/hook"):
                hook = Webhook.from_kv(kv)
                if hook is not None:
                    hooks.append(hook)
        return sorted(hooks, key=lambda h: (h.created_at, h.webhook_id))

    def _status(self, hook: Webhook) -> tuple[dict[str, Any], KeyValue | None]:
        kv = self.view.get(hook.base + "status")
        return (orjson.loads(kv.value) if kv else {}), kv

    def _public(self, hook: Webhook) -> dict[str, Any]:
        status, _ = self._status(hook)
        return {
            "webhook_id": hook.webhook_id,
            "scope": "global" if hook.scope is None else "tenant",
            "tenant_id": hook.scope,
            "url": hook.url,
            "description": hook.description,
            "created_at": hook.created_at,
            "current_version": self.config.version_of(hook.scope),
            "delivery": {
                "state": status.get("state", "idle"),
                "version": status.get("version"),
                "delivered_version": status.get("delivered_version"),
                "delivered_at": status.get("delivered_at"),
                "attempts": status.get("attempts", 0),
                "last_attempt_at": status.get("last_attempt_at"),
                "last_status_code": status.get("last_status_code"),
                "last_error": status.get("last_error"),
                "next_attempt_at": status.get("next_attempt_at"),
                "failed_deliveries": status.get("failed_deliveries", 0),
            },
        }

    def list(self, tenant_id: str | None = None) -> dict[str, Any]:
        """Registered webhooks with their last delivery status (secrets never shown)."""
        hooks = [h for h in self._hooks() if tenant_id is None or h.scope == tenant_id]
        return {"webhooks": [self._public(h) for h in hooks], "count": len(hooks)}

    def get(self, webhook_id: str) -> dict[str, Any]:
        """One webhook with its delivery status."""
        return self._public(self._require(webhook_id))

    def _require(self, webhook_id: str) -> Webhook:
        for hook in self._hooks():
            if hook.webhook_id == webhook_id:
                return hook
        raise WebhookNotFound(
            f"no webhook {webhook_id!r} is registered", details={"webhook_id": webhook_id}
        )

    async def register(
        self, *, url: str, tenant_id: str | None, secret: str | None, description: str
    ) -> dict[str, Any]:
        """Register a webhook; the answer carries the signing secret (shown only once)."""
        if tenant_id is not None:
            self.tenants.require(tenant_id)
        hook = Webhook(
            webhook_id=uuid.uuid4().hex,
            scope=tenant_id,
            url=url,
            secret=secret or secrets.token_urlsafe(32),
            description=description,
            created_at=utc_now(),
        )
        revision = await self.backend.put(
            hook.base + "hook", orjson.dumps(hook.record()), if_revision=0
        )
        await self.view.wait_for(revision, self.visibility_timeout)
        return self._public(hook) | {"secret": hook.secret}

    async def delete(self, webhook_id: str) -> dict[str, Any]:
        """Unregister a webhook (an in-flight delivery stops at its next attempt)."""
        hook = self._require(webhook_id)
        revision = None
        for suffix in ("status", "hook"):
            revision = await self.backend.delete(hook.base + suffix) or revision
        if revision is not None:
            await self.view.wait_for(revision, self.visibility_timeout)
        return {"deleted": True, "webhook_id": webhook_id}

    # -- delivery worker ----------------------------------------------------------

    async def start(self) -> None:
        """Start the delivery worker of this replica."""
        self._client = httpx.AsyncClient(timeout=self.request_timeout, follow_redirects=False)
        self._worker = asyncio.create_task(self._work(), name="config-webhooks")

    async def stop(self) -> None:
        """Stop the worker and any delivery in flight (their claims expire for others)."""
        await cancel_and_wait(self._worker, *self._deliveries.values())
        self._worker = None
        self._deliveries.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self) -> None:
        # Woken by every config or tenant change; the periodic rescan also picks up new
        # webhooks and claims abandoned by a replica that died.
        while not self.config.changes.closed:
            woken = [
                asyncio.ensure_future(signal.current().wait())
                for signal in (self.config.changes, self.registrations)
            ]
            try:
                await self._scan()
            except Exception:
                log.exception("webhook scan failed; retrying")
            try:
                await asyncio.wait(
                    woken, timeout=self.rescan_interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in woken:
                    waiter.cancel()

    async def _scan(self) -> None:
        now = time.time()
        for hook in self._hooks():
            running = self._deliveries.get(hook.webhook_id)
            if running is not None and not running.done():
                continue
            wanted = self.config.version_of(hook.scope)
            if wanted <= 0:
                continue  # nothing was ever written for this scope
            status, kv = self._status(hook)
            if status.get("delivered_version", 0) >= wanted:
                continue
            if status.get("state") == "failed" and status.get("version", 0) >= wanted:
                continue  # gave up on this version; the next change tries again
            if status.get("state") == "delivering" and status.get("claim_expires_at", 0) > now:
                continue  # another replica (or an earlier task here) is on it
            claim = status | {
                "state": "delivering",
                "version": wanted,
                "owner": self.replica_id,
                "claim_expires_at": now + self.claim_ttl,
                "attempts": 0,
                "next_attempt_at": None,
            }
            try:
                revision = await self.backend.put(
                    hook.base + "status",
                    orjson.dumps(claim),
                    if_revision=kv.mod_revision if kv else 0,
                )
            except RevisionConflict:
                continue  # another replica claimed it first
            self._deliveries[hook.webhook_id] = asyncio.create_task(
                self._deliver(hook, claim, revision), name=f"webhook-{hook.webhook_id}"
            )

    async def _deliver(self, hook: Webhook, status: dict[str, Any], revision: int) -> None:
        """Send the newest version until it is accepted or the attempts run out."""
        assert self._client is not None
        for attempt in range(1, self.max_attempts + 1):
            # The wait after this attempt if it fails (also how long the claim must last).
            delay = jittered_delay(attempt - 1, self.initial_backoff, self.max_backoff)
            body = self.config.body_of(hook.scope)
            version = int(body["version"])
            payload = {
                "event": EVENT_NAME,
                "webhook_id": hook.webhook_id,
                "delivery_id": uuid.uuid4().hex,
                "scope": "global" if hook.scope is None else "tenant",
                "tenant_id": hook.scope,
                "version": version,
                "sent_at": utc_now(),
                "data": body,
            }
            raw = orjson.dumps(payload)
            code: int | None = None
            error: str | None = None
            try:
                resp = await self._client.post(
                    hook.url,
                    content=raw,
                    headers={
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: sign(hook.secret, raw),
                        "X-Hub-Event": EVENT_NAME,
                        "X-Hub-Delivery": str(payload["delivery_id"]),
                        "X-Hub-Webhook-Id": hook.webhook_id,
                        "X-Hub-Version": str(version),
                    },
                )
                code = resp.status_code
                if not 200 <= code < 300:
                    error = f"HTTP {code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            now = time.time()
            status = status | {
                "version": version,
                "attempts": attempt,
                "last_attempt_at": utc_now(),
                "last_status_code": code,
                "last_error": error,
                "claim_expires_at": now + self.claim_ttl + delay,
            }
            if error is None:
                status |= {
                    "state": "delivered",
                    "delivered_version": version,
                    "delivered_at": utc_now(),
                    "next_attempt_at": None,
                }
            elif attempt == self.max_attempts:
                status |= {
                    "state": "failed",
                    "next_attempt_at": None,
                    "failed_deliveries": status.get("failed_deliveries", 0) + 1,
                }
                log.warning(
                    "webhook %s gave up on version %d after %d attempts: %s",
                    hook.webhook_id,
                    version,
                    attempt,
                    error,
                )
            else:
                status |= {"state": "delivering", "next_attempt_at": now + delay}
            try:
                revision = await self.backend.put(
                    hook.base + "status", orjson.dumps(status), if_revision=revision
                )
            except RevisionConflict:
                log.info("webhook %s was taken over or removed; stopping", hook.webhook_id)
                return
            except Exception as exc:
                log.warning("could not record webhook %s status: %s", hook.webhook_id, exc)
                return
            if error is None or attempt == self.max_attempts:
                break
            await asyncio.sleep(delay)
        await self.view.wait_for(revision, self.visibility_timeout)
        self.config.changes.notify()  # a newer version may have arrived meanwhile


def validate_webhook_url(url: str) -> str:
    """An absolute http(s) URL; InvalidRequest otherwise."""
    parsed = httpx.URL(url) if url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequest(
            "a webhook URL must be an absolute http:// or https:// URL",
            details={"field": "url"},
        )
    return url
