"""Who may do what: bearer tokens with roles, tenant binding, and the bootstrap admin.

Tokens look like ``chub_<id>.<secret>``. Only a SHA-256 of the secret is stored (under
``tokens/<id>`` in the backend, mirrored by the view), so a token is verified with one
dictionary lookup and one hash — no backend round trip per request. The secret is a
256-bit random value, so a fast hash is enough; a slow KDF protects low-entropy
passwords, which these are not.

Roles and what they grant are :data:`ROLE_PERMISSIONS`. Tenant context headers are
trusted as sent only from roles holding :attr:`Permission.ASSERT_TENANT`; roles holding
:attr:`Permission.FORWARD_TENANT` (services) may forward a tenant, whose tier then comes
from the tenant directory; a ``tenant`` token acts for its own tenant whatever headers
it sends.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import sys
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters import Backend, EventType, KeyValue, Put, WatchEvent
from facade.state.view import StateView
from shared.errors import (
    DuplicateHeader,
    Forbidden,
    InvalidRequest,
    NotFound,
    RevisionConflict,
    TenantMismatch,
    Unauthorized,
)
from shared.timestamps import iso_utc, parse_iso_utc, utc_now

log = logging.getLogger("central_hub.security")

TOKENS_PREFIX = "tokens/"
BOOTSTRAP_KEY = "security/bootstrap"
TOKEN_PREFIX = "chub_"
BOOTSTRAP_TOKEN_FILE = "admin-token"


class Role(enum.StrEnum):
    """What a token is for."""

    ADMIN = "admin"
    SERVICE = "service"
    GATEWAY = "gateway"
    TENANT = "tenant"
    READ_ONLY = "read-only"


class Permission(enum.StrEnum):
    """One capability a route requires."""

    READ = "read"
    """Discovery, listings, health, config and usage reads (tenant roles: own tenant)."""
    REGISTER = "register"
    """Register, heartbeat, deregister (service roles: their own service names)."""
    ASSERT_TENANT = "assert-tenant"
    """Send tenant context headers that the hub trusts (tier included)."""
    FORWARD_TENANT = "forward-tenant"
    """Forward a tenant's context; its tier comes from the tenant directory, an asserted
    tier can only lower it (see :func:`shared.tenancy.capped_tier`)."""
    REPORT = "report"
    """Report call outcomes (circuits), errors, quota check/allocate/release."""
    CONFIGURE = "configure"
    """Write configuration, tenants, webhooks."""
    ADMINISTER = "administer"
    """Manage tokens, read every audit record, anything else."""


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.SERVICE: frozenset(
        {Permission.READ, Permission.REGISTER, Permission.REPORT, Permission.FORWARD_TENANT}
    ),
    Role.GATEWAY: frozenset({Permission.READ, Permission.ASSERT_TENANT, Permission.REPORT}),
    Role.TENANT: frozenset({Permission.READ}),
    Role.READ_ONLY: frozenset({Permission.READ}),
}

# Secrets that must never guard a hub (defaults shipped by popular tools, and the like).
KNOWN_WEAK_SECRETS = frozenset(
    {
        "admin",
        "changeme",
        "change-me",
        "default",
        "password",
        "secret",
        "token",
        "nacos",
        "SecretKey012345678901234567890123456789012345678901234567890123456789",
        "VGhpc0lzTXlDdXN0b21TZWNyZXRLZXkwMTIzNDU2Nzg=",
    }
)
MIN_SECRET_LENGTH = 32

SINGLE_HEADERS = frozenset({b"authorization"})
"""Headers that decide who the caller is: allowed once."""
CONSISTENT_HEADERS = frozenset(
    {b"x-tenant-id", b"x-company-id", b"x-subscription-tier", b"x-user-id"}
)
"""Headers that decide whom a request acts for: repeated only with the same value."""
_IDENTITY_HEADERS = SINGLE_HEADERS | CONSISTENT_HEADERS


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    token_id: str
    role: Role
    name: str = ""
    tenant_id: str | None = None
    services: tuple[str, ...] = ()
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    expires_at: float | None = None
    """When the token stops being valid (epoch seconds), if it expires."""

    def allows(self, permission: Permission) -> bool:
        """Whether this caller holds ``permission``."""
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """Raise Forbidden unless this caller holds ``permission``."""
        if permission not in self.permissions:
            raise Forbidden(
                f"a {self.role.value} token may not do this (needs {permission.value!r})",
                details={"role": self.role.value, "required_permission": permission.value},
            )

    def require_tenant(self, tenant_id: str) -> None:
        """Raise TenantMismatch when a tenant-bound caller addresses another tenant."""
        if self.tenant_id is not None and self.tenant_id != tenant_id:
            raise TenantMismatch(
                "this token belongs to another tenant",
                details={"tenant_id": tenant_id},
            )

    def require_service(self, service: str) -> None:
        """Raise Forbidden when a service token acts on a service it is not bound to."""
        if self.role is Role.SERVICE and self.services and service not in self.services:
            raise Forbidden(
                f"this service token may only act for {', '.join(self.services)}",
                details={"service_name": service, "allowed_services": list(self.services)},
            )


def principal_for(
    role: Role,
    token_id: str,
    *,
    name: str = "",
    tenant_id: str | None = None,
    services: tuple[str, ...] = (),
    expires_at: float | None = None,
) -> Principal:
    """A principal with the permissions of ``role``."""
    return Principal(
        token_id=token_id,
        role=role,
        name=name,
        tenant_id=tenant_id,
        services=services,
        permissions=ROLE_PERMISSIONS[role],
        expires_at=expires_at,
    )


DEV_PRINCIPAL = principal_for(Role.ADMIN, "dev-mode", name="dev mode (no authentication)")
ANONYMOUS_READER = principal_for(Role.READ_ONLY, "anonymous", name="anonymous reader")
CONFIGURED_ADMIN_ID = "configured-admin"
UNSTORED_TOKEN_IDS = frozenset(
    {DEV_PRINCIPAL.token_id, ANONYMOUS_READER.token_id, CONFIGURED_ADMIN_ID}
)
"""Principals with no token record (nothing to revoke; their grants end with the hub)."""


def weak_secret_reason(secret: str) -> str | None:
    """Why ``secret`` is unfit to guard the hub, or None if it is acceptable."""
    if secret in KNOWN_WEAK_SECRETS or secret.lower() in KNOWN_WEAK_SECRETS:
        return "it is a publicly known default"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"it is shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(secret)) < 10:
        return "it repeats too few distinct characters"
    return None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the hub reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_duplicated_headers(raw_headers: list[tuple[bytes, bytes]]) -> None:
    """Raise DuplicateHeader when an identity header is ambiguous (see the error class).

    ``raw_headers`` are the request's header pairs as received (lower-case names).
    """
    seen: dict[bytes, bytes] = {}
    for name, value in raw_headers:
        if name not in _IDENTITY_HEADERS:
            continue
        previous = seen.get(name)
        if previous is None:
            seen[name] = value
        elif name in SINGLE_HEADERS or previous.strip() != value.strip():
            header = name.decode("latin-1")
            raise DuplicateHeader(
                f"the {header} header was sent more than once"
                + ("" if name in SINGLE_HEADERS else " with different values"),
                details={"header": header},
            )
    tenant, company = seen.get(b"x-tenant-id"), seen.get(b"x-company-id")
    # x-company-id is an alias of x-tenant-id: naming two tenants at once is as ambiguous
    # as sending x-tenant-id twice, whichever of the two a reader would prefer.
    if tenant is not None and company is not None and tenant.strip() != company.strip():
        raise DuplicateHeader(
            "x-tenant-id and its alias x-company-id name different tenants",
            details={"header": "x-company-id"},
        )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    """Issues, verifies, lists and revokes tokens; answers from the view."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        *,
        configured_admin_token: str | None,
        visibility_timeout: float,
    ) -> None:
        self.backend = backend
        self.view = view
        self._configured_digest = (
            _digest(configured_admin_token) if configured_admin_token else None
        )
        self.visibility_timeout = visibility_timeout

    # -- verification (every request) -------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization`` header value; Unauthorized if invalid."""
        if not authorization:
            raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("use the Bearer scheme: Authorization: Bearer <token>")
        if self._configured_digest is not None and hmac.compare_digest(
            _digest(token), self._configured_digest
        ):
            return principal_for(Role.ADMIN, CONFIGURED_ADMIN_ID, name="HUB_ADMIN_TOKEN")
        token_id, secret = _split(token)
        kv = self.view.get(TOKENS_PREFIX + token_id) if token_id else None
        record = orjson.loads(kv.value) if kv is not None else None
        if (
            record is None
            or token_id is None
            or secret is None
            or not hmac.compare_digest(_digest(secret), str(record.get("secret_sha256", "")))
        ):
            raise Unauthorized("the token is not valid")
        if record.get("revoked_at"):
            raise Unauthorized("the token has been revoked")
        expires_at = expiry_of(record)
        if expires_at is not None and expires_at <= time.time():
            raise Unauthorized("the token has expired")
        return principal_for(
            Role(record["role"]),
            token_id,
            name=record.get("name", ""),
            tenant_id=record.get("tenant_id"),
            services=tuple(record.get("services") or ()),
            expires_at=expires_at,
        )

    # -- management -------------------------------------------------------------------

    async def issue(
        self,
        *,
        role: Role,
        name: str,
        created_by: str,
        tenant_id: str | None = None,
        services: list[str] | None = None,
        expires_in: float | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Create a token; return the secret token (shown once) and its public record.

        ``expires_in``: seconds until the token stops being valid (default: never).
        """
        if role is Role.TENANT and not tenant_id:
            raise InvalidRequest("a tenant token must name its tenant_id")
        if role is not Role.TENANT and tenant_id:
            raise InvalidRequest("only tenant tokens are bound to a tenant_id")
        if role is not Role.SERVICE and services:
            raise InvalidRequest("only service tokens are bound to service names")
        token, record = _new_token(
            role=role, name=name, created_by=created_by, tenant_id=tenant_id, services=services
        )
        if expires_in is not None:
            record["expires_at"] = iso_utc(time.time() + expires_in)
        revision = await self.backend.put(
            TOKENS_PREFIX + record["id"], orjson.dumps(record), if_revision=0
        )
        await self.view.wait_for(revision, self.visibility_timeout)
        return token, public_token(record)

    def list(self) -> list[dict[str, Any]]:
        """Every token's public record (never a secret or its hash)."""
        records = [orjson.loads(kv.value) for kv in self.view.items(TOKENS_PREFIX)]
        return sorted((public_token(r) for r in records), key=lambda r: r["created_at"])

    async def revoke(self, token_id: str) -> dict[str, Any]:
        """Mark a token revoked (kept for the audit trail)."""
        for _ in range(5):
            kv = self.view.get(TOKENS_PREFIX + token_id)
            if kv is None:
                raise NotFound(f"no token {token_id!r}", details={"token_id": token_id})
            record = orjson.loads(kv.value)
            record["revoked_at"] = record.get("revoked_at") or utc_now()
            try:
                revision = await self.backend.put(
                    kv.key, orjson.dumps(record), if_revision=kv.mod_revision
                )
            except RevisionConflict:
                continue
            await self.view.wait_for(revision, self.visibility_timeout)
            return public_token(record)
        raise RevisionConflict("the token changed concurrently; try again")

    # -- bootstrap --------------------------------------------------------------------

    async def bootstrap(self, token_file: Path) -> Bootstrapped | None:
        """On the very first start of a hub keyspace, create an admin token.

        The marker key and the token record are written in one compare-and-set
        transaction, so exactly one replica wins and a keyspace is never marked without
        its token. The token is first written to a pending file beside ``token_file``
        (mode 0600) and moved into place once committed, so a crash at any step leaves
        either nothing or a token that the next start finds. A marker whose token record
        is missing (left by older versions) is repaired with a new token.
        Returns None when the keyspace was bootstrapped before.
        """
        marker = self.view.get(BOOTSTRAP_KEY)
        expected_marker = 0
        recovered = False
        if marker is not None:
            token_id = orjson.loads(marker.value).get("token_id")
            # The backend, not the view: a view may hold a marker a moment before the
            # token record written with it (the embedded store gives each its revision).
            if token_id is not None and await self.backend.get(TOKENS_PREFIX + token_id):
                return self._finish_interrupted_move(token_file, token_id)
            if token_id is None and any(
                orjson.loads(kv.value).get("created_by") == "bootstrap"
                for kv in self.view.items(TOKENS_PREFIX)
            ):
                return None  # bootstrapped by a version whose marker named no token
            log.warning("bootstrap marker found without its admin token record; issuing a new one")
            expected_marker = marker.mod_revision
            recovered = True
        token, record = _new_token(role=Role.ADMIN, name="bootstrap admin", created_by="bootstrap")
        pending = _pending_path(token_file, record["id"])
        _write_private(pending, token)
        await _test_pause("before-commit")
        try:
            revision = await self.backend.put_all(
                [
                    # The record first: whoever sees the marker has seen its token.
                    Put(TOKENS_PREFIX + record["id"], orjson.dumps(record), if_revision=0),
                    Put(
                        BOOTSTRAP_KEY,
                        orjson.dumps({"at": record["created_at"], "token_id": record["id"]}),
                        if_revision=expected_marker,
                    ),
                ]
            )
        except RevisionConflict:
            won = await self.backend.get(BOOTSTRAP_KEY)
            if won is None or orjson.loads(won.value).get("token_id") != record["id"]:
                pending.unlink(missing_ok=True)
                return None  # another replica bootstrapped first
            revision = won.mod_revision  # a retried write of ours that had committed
        # Any other failure keeps the pending file: the write may have committed after
        # all, and the next attempt then finds the marker naming it and moves it in place.
        await _test_pause("after-commit")
        os.replace(pending, token_file)
        _remove_pending(token_file)
        await _test_pause("after-file")
        await self.view.wait_for(revision, self.visibility_timeout)
        return Bootstrapped(token, recovered=recovered)

    def _finish_interrupted_move(self, token_file: Path, token_id: str) -> Bootstrapped | None:
        """Move a committed token's pending file into place (a start died in between)."""
        pending = _pending_path(token_file, token_id)
        if not pending.exists():
            _remove_pending(token_file)
            return None
        token = pending.read_text().strip()
        os.replace(pending, token_file)
        _remove_pending(token_file)
        return Bootstrapped(token, recovered=True)


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    """The bootstrap admin token this start issued (or completed) and whether it recovered."""

    token: str
    recovered: bool = False


BOOTSTRAP_PAUSE_ENV = "HUB_TEST_BOOTSTRAP_PAUSE"
"""Test-only fault injection: ``<step>`` stops the bootstrap at that step forever (so a
test can kill the process exactly there), ``<step>:<seconds>`` only for that long. Steps:
before-commit, after-commit, after-file. Never set it in production."""


async def _test_pause(step: str) -> None:
    wanted, _, seconds = os.environ.get(BOOTSTRAP_PAUSE_ENV, "").partition(":")
    if wanted != step:
        return
    print(f"central-hub: test hook: bootstrap paused at {step}", file=sys.stderr, flush=True)
    if seconds:
        await asyncio.sleep(float(seconds))
    else:
        await asyncio.Event().wait()


def _pending_path(token_file: Path, token_id: str) -> Path:
    return token_file.with_name(f"{token_file.name}.{token_id}.pending")


def _remove_pending(token_file: Path) -> None:
    if token_file.parent.is_dir():
        for stale in token_file.parent.glob(f"{token_file.name}.*.pending"):
            stale.unlink(missing_ok=True)


def _write_private(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)


def _new_token(
    *,
    role: Role,
    name: str,
    created_by: str,
    tenant_id: str | None = None,
    services: list[str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """A fresh secret token and the record stored for it (holding only its hash)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = {
        "id": token_id,
        "name": name,
        "role": role.value,
        "tenant_id": tenant_id,
        "services": services or [],
        "secret_sha256": _digest(secret),
        "created_at": utc_now(),
        "created_by": created_by,
        "revoked_at": None,
    }
    return f"{TOKEN_PREFIX}{token_id}.{secret}", record


def expiry_of(record: Mapping[str, Any]) -> float | None:
    """A token record's expiry in epoch seconds (``None``: it never expires)."""
    raw = record.get("expires_at")
    if not raw:
        return None
    expiry = parse_iso_utc(str(raw))
    return 0.0 if expiry is None else expiry  # an unreadable expiry counts as expired


class Grant:
    """What authorised one long-lived request (an SSE stream, a long poll).

    ``ended`` is set when the grant stops being valid; ``reason`` says why.
    """

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.ended = asyncio.Event()
        self.reason: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def end(self, reason: str) -> None:
        """Mark the grant ended (idempotent)."""
        if self.reason is None:
            self.reason = reason
        self.ended.set()
        if self._timer is not None:
            self._timer.cancel()

    def error(self) -> Unauthorized:
        """The error that ends the request."""
        return Unauthorized(
            self.reason or "the token is no longer valid",
            details={"token_id": self.principal.token_id},
        )


class GrantWatch:
    """Ends long-lived requests when what authorised them stops being valid.

    A view listener on ``tokens/``: a revocation (or deletion) written through any
    replica reaches every replica's view, and ends every stream and long poll that token
    opened there. A tenant token's grants also end when its tenant is removed (the tenant
    directory's changes, also from the view) and when the token expires (a timer).
    ``on_end`` callbacks run after grants end (the config service wakes its waiters).
    """

    def __init__(self, tenant_exists: Callable[[str], bool]) -> None:
        self.tenant_exists = tenant_exists
        self.on_end: list[Callable[[], None]] = []
        # Weak: a stream that ends without closing its grant leaves nothing behind.
        self._by_token: dict[str, weakref.WeakSet[Grant]] = {}
        self._by_tenant: dict[str, weakref.WeakSet[Grant]] = {}

    def open(self, principal: Principal) -> Grant:
        """Watch ``principal``'s grant for the life of one request; :meth:`close` after."""
        grant = Grant(principal)
        if principal.token_id not in UNSTORED_TOKEN_IDS:
            self._by_token.setdefault(principal.token_id, weakref.WeakSet()).add(grant)
        tenant_id = principal.tenant_id
        if tenant_id is not None and self.tenant_exists(tenant_id):
            self._by_tenant.setdefault(tenant_id, weakref.WeakSet()).add(grant)
        if principal.expires_at is not None:
            delay = max(0.0, principal.expires_at - time.time())
            grant._timer = asyncio.get_running_loop().call_later(
                delay, self._end, [grant], "the token has expired"
            )
        return grant

    def close(self, grant: Grant) -> None:
        """Stop watching ``grant`` (its request is over)."""
        if grant._timer is not None:
            grant._timer.cancel()
        for index, key in (
            (self._by_token, grant.principal.token_id),
            (self._by_tenant, grant.principal.tenant_id),
        ):
            grants = index.get(key) if key is not None else None
            if grants is not None:
                grants.discard(grant)
                if not grants:
                    index.pop(str(key), None)

    def _end(self, grants: list[Grant], reason: str) -> None:
        live = [g for g in grants if not g.ended.is_set()]
        for grant in live:
            grant.end(reason)
        if live:
            for callback in self.on_end:
                callback()

    def _end_token(self, token_id: str, reason: str) -> None:
        grants = self._by_token.pop(token_id, None)
        if grants:
            self._end(list(grants), reason)

    # -- view listener on tokens/ ---------------------------------------------------

    def reset(self, items: dict[str, KeyValue]) -> None:
        """A full resync: end the grants of tokens now gone or revoked."""
        for token_id in list(self._by_token):
            kv = items.get(TOKENS_PREFIX + token_id)
            reason = _invalid_reason(kv.value if kv is not None else None)
            if reason is not None:
                self._end_token(token_id, reason)

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """A token record changed: end its grants if it is revoked, deleted or expired."""
        token_id = event.key[len(TOKENS_PREFIX) :]
        if token_id not in self._by_token:
            return
        value = event.value if event.type is EventType.PUT else None
        reason = _invalid_reason(value)
        if reason is not None:
            self._end_token(token_id, reason)

    # -- tenant directory changes ---------------------------------------------------

    def tenants_changed(self) -> None:
        """End the grants of tenant tokens whose tenant was removed."""
        for tenant_id in [t for t in self._by_tenant if not self.tenant_exists(t)]:
            grants = self._by_tenant.pop(tenant_id)
            self._end(list(grants), f"tenant {tenant_id!r} was removed")


def _invalid_reason(value: bytes | None) -> str | None:
    """Why a stored token record no longer authorises anything (``None``: it does)."""
    if value is None:
        return "the token was deleted"
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "the token record is unreadable"
    if not isinstance(record, dict):
        return "the token record is unreadable"
    if record.get("revoked_at"):
        return "the token has been revoked"
    expires_at = expiry_of(record)
    if expires_at is not None and expires_at <= time.time():
        return "the token has expired"
    return None


def public_token(record: Mapping[str, Any]) -> dict[str, Any]:
    """A token record without its secret hash."""
    return {k: v for k, v in record.items() if k != "secret_sha256"}


def _split(token: str) -> tuple[str | None, str | None]:
    if not token.startswith(TOKEN_PREFIX):
        return None, None
    token_id, dot, secret = token[len(TOKEN_PREFIX) :].partition(".")
    if not dot or not token_id.isalnum() or len(token_id) > 32:
        return None, None
    return token_id, secret


class AccessControl:
    """Authenticates a request, checks one permission, applies rate limits.

    Callable without FastAPI's dependency injection so the discovery hot path can use it
    directly; the result is kept on ``request.state.principal`` for the audit log.
    """

    def __init__(
        self,
        tokens: TokenService,
        limiter: Any,
        *,
        dev: bool,
        anonymous_reads: bool,
        tier_of: Any,
    ) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.dev = dev
        self.anonymous_reads = anonymous_reads
        self.tier_of = tier_of

    def authorize(self, request: Any, permission: Permission) -> Principal:
        """The caller of ``request`` if it holds ``permission``; Unauthorized/Forbidden else."""
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            refuse_duplicated_headers(request.headers.raw)
            principal = self._identify(request, permission)
            request.state.principal = principal
            if not self.dev:
                tenant = principal.tenant_id
                self.limiter.admit(principal.token_id, tenant, self.tier_of(tenant))
        principal.require(permission)
        return principal

    def _identify(self, request: Any, permission: Permission) -> Principal:
        if self.dev:
            return DEV_PRINCIPAL
        header = request.headers.get("authorization")
        if header is None and self.anonymous_reads and permission is Permission.READ:
            return ANONYMOUS_READER
        principal: Principal = self.tokens.authenticate(header)
        return principal
