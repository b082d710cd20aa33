"""Layered, versioned configuration (DESIGN.md section 8).

Layers, merged in this order (later wins, objects merge key by key):

1. **tier defaults**: the spec's free / pro / enterprise table, shipped as data in
   ``facade/data/tier_defaults.json``;
2. **global config**: written with ``PUT``/``PATCH /config``;
3. **tier-scoped global config** (one layer per tier, applied to that tier's tenants):
   written with ``PUT``/``PATCH /config/tiers/{tier}``, or by a global write in the
   spec's per-tier shape (``{"rate_limits": {"free_tier": 50, "pro_tier": 200}}``, see
   :func:`split_tier_values`);
4. **tenant overrides**: written with ``PUT``/``PATCH /config/{tenant_id}``.

Storage: a layer *is* its history. Every write creates the key
``config/global/history/<seq>``, ``config/tiers/<tier>/history/<seq>`` or
``config/tenants/<id>/history/<seq>`` (``seq`` is the
layer's write counter, zero padded) with a create-only compare-and-set, so two writers
can never both produce the same next version and no write is ever half done: the newest
history entry is the layer's current content. Old entries beyond ``history_limit`` are
pruned (never the newest).

Versions are backend revisions, so they only grow:

* a layer's version is the revision of its newest history entry;
* a tenant's *effective* version is the newest of: its overrides' version, the global
  version, its tier layer's version and its tenant record's revision (a tier change
  changes the defaults). Any write that changes what ``GET /config/{tenant_id}``
  answers raises this number, and it is the ``ETag``, the SSE event id and the
  long-polling index.

Reads come from the view; writes read the layer from the backend and compare-and-set.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.resources
import logging
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from adapters import Backend, EventType, KeyValue, WatchEvent
from facade.state.instances import utc_now
from facade.state.view import StateView
from facade.tenancy.tenant_directory import TenantDirectory, tenant_key
from shared.errors import (
    BackendTimeout,
    ConfigVersionNotFound,
    HubError,
    InvalidRequest,
    PreconditionFailed,
    RevisionConflict,
    TenantNotFound,
)
from shared.tenancy import TIERS

log = logging.getLogger("central_hub.config")

CONFIG_PREFIX = "config/"
GLOBAL_HISTORY_PREFIX = "config/global/history/"
TIER_CONFIG_PREFIX = "config/tiers/"
TENANT_CONFIG_PREFIX = "config/tenants/"
DEFAULT_TIER = "free"

LIMIT_SECTIONS = ("rate_limits", "resource_limits")
"""Sections whose values must be non-negative integers."""
FLAG_SECTIONS = ("features",)
"""Sections whose values must be booleans."""
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MAX_LIMIT = 2**53 - 1
"""Largest limit accepted (still exact as a JSON number in every client)."""
MAX_VERSION = 2**53 - 1
"""Largest version (revision) accepted in requests; larger ones cannot exist."""
_CAS_ATTEMPTS = 50

Scope = str | None
"""What a subscriber watches: a tenant id, or ``None`` for the global layer."""
WriteMode = Literal["put", "patch", "rollback", "tenant_deleted"]


@dataclass(frozen=True, slots=True)
class TierScope:
    """The tier-scoped global layer of one tier."""

    tier: str


LayerScope = str | TierScope | None
"""A config layer: a tenant id, a tier's layer, or ``None`` for the global layer."""

PER_TIER_KEY = re.compile(r"^([A-Za-z0-9]+)_tier$")
"""The spec's per-tier key in a global write: ``free_tier``, ``pro_tier``, ..."""
PER_TIER_SCALAR_KEY = {"rate_limits": "api_calls_per_hour"}
"""What a bare number under ``<section>.<tier>_tier`` sets in that tier's layer: the
spec's ``rate_limits`` carry ``api_calls_per_hour`` (the limit the hub enforces) and
``websocket_connections``; a per-tier rate limit is the former."""


def layer_prefix(scope: LayerScope) -> str:
    """The history prefix of one layer."""
    if scope is None:
        return GLOBAL_HISTORY_PREFIX
    if isinstance(scope, TierScope):
        return f"{TIER_CONFIG_PREFIX}{scope.tier}/history/"
    return f"{TENANT_CONFIG_PREFIX}{scope}/history/"


def history_key(scope: LayerScope, sequence: int) -> str:
    """The key of one history entry (zero padded so key order is version order)."""
    return f"{layer_prefix(scope)}{sequence:012d}"


def parse_history_key(key: str) -> tuple[LayerScope, int] | None:
    """``(scope, sequence)`` of a history key, or ``None`` for any other key."""
    scope: LayerScope
    if key.startswith(GLOBAL_HISTORY_PREFIX):
        scope = None
        tail = key[len(GLOBAL_HISTORY_PREFIX) :]
    elif key.startswith(TIER_CONFIG_PREFIX):
        tier, sep, tail = key[len(TIER_CONFIG_PREFIX) :].partition("/history/")
        if not sep or tier not in TIERS:
            return None
        scope = TierScope(tier)
    elif key.startswith(TENANT_CONFIG_PREFIX):
        tenant_id, sep, tail = key[len(TENANT_CONFIG_PREFIX) :].partition("/history/")
        if not sep or not tenant_id:
            return None
        scope = tenant_id
    else:
        return None
    return (scope, int(tail)) if tail.isdigit() else None


def scope_fields(scope: LayerScope) -> dict[str, Any]:
    """How the API names a layer: ``scope`` plus ``tenant_id`` or ``tier``."""
    if scope is None:
        return {"scope": "global", "tenant_id": None}
    if isinstance(scope, TierScope):
        return {"scope": "tier", "tier": scope.tier, "tenant_id": None}
    return {"scope": "tenant", "tenant_id": scope}


# -- tier defaults -------------------------------------------------------------------


def load_tier_defaults() -> dict[str, dict[str, Any]]:
    """The shipped tier defaults table, validated like any config write."""
    raw = importlib.resources.files("facade").joinpath("data/tier_defaults.json").read_bytes()
    table = orjson.loads(raw)
    defaults: dict[str, dict[str, Any]] = {t: validate_config(table[t]) for t in TIERS}
    return defaults


# -- validation and merging ----------------------------------------------------------


def validate_config(doc: Any) -> dict[str, Any]:
    """Check a whole layer document; return it, or raise InvalidRequest naming every problem.

    Known sections: ``rate_limits`` and ``resource_limits`` map names to non-negative
    integers, ``features`` maps names to booleans. Other sections are kept as given.
    """
    problems: list[dict[str, str]] = []
    if not isinstance(doc, dict):
        raise InvalidRequest(
            "a configuration must be a JSON object of sections",
            details={"errors": [{"field": "body", "problem": "not an object"}]},
        )
    for section, body in doc.items():
        if not _NAME.match(section):
            problems.append({"field": section, "problem": "section names: [A-Za-z0-9_.-]{1,64}"})
            continue
        if section not in LIMIT_SECTIONS and section not in FLAG_SECTIONS:
            if body is None:
                problems.append({"field": section, "problem": "null is only allowed in PATCH"})
            elif (where := _unstorable(body, section)) is not None:
                problems.append(
                    {"field": where, "problem": "numbers must be finite and fit in 64 bits"}
                )
            continue
        if not isinstance(body, dict):
            problems.append({"field": section, "problem": "must be an object"})
            continue
        for name, value in body.items():
            field = f"{section}.{name}"
            if not _NAME.match(name):
                problems.append({"field": field, "problem": "names: [A-Za-z0-9_.-]{1,64}"})
            elif section in FLAG_SECTIONS:
                if not isinstance(value, bool):
                    problems.append({"field": field, "problem": "must be true or false"})
            elif (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < 0
                or value > MAX_LIMIT
            ):
                problems.append({"field": field, "problem": "must be a non-negative integer"})
    if problems:
        raise InvalidRequest("the configuration failed validation", details={"errors": problems})
    return doc


def split_tier_values(doc: Any, *, patch: bool) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Split the spec's per-tier values out of a global write.

    ``{"rate_limits": {"free_tier": 50, "pro_tier": 200, "burst": 5}}`` becomes the global
    part ``{"rate_limits": {"burst": 5}}`` and the tier parts ``{"free": {"rate_limits":
    {"api_calls_per_hour": 50}}, "pro": {...200}}``: a number under ``<section>.<tier>_tier``
    sets that tier's :data:`PER_TIER_SCALAR_KEY` of the section, an object sets those
    names of the section in that tier's layer. Tier parts are merge patches of the tier
    layers (``null`` removes, in a PATCH). Only the known sections (``rate_limits``,
    ``resource_limits``, ``features``) are split; a section left empty by the split is
    dropped. Raises InvalidRequest for an unknown tier or a value the tier cannot take.
    """
    if not isinstance(doc, dict):
        return doc, {}
    global_part: dict[str, Any] = {}
    tiers: dict[str, dict[str, Any]] = {}
    problems: list[dict[str, str]] = []
    for section, body in doc.items():
        if section not in LIMIT_SECTIONS + FLAG_SECTIONS or not isinstance(body, dict):
            global_part[section] = body
            continue
        rest: dict[str, Any] = {}
        for name, value in body.items():
            match = PER_TIER_KEY.match(name)
            if match is None:
                rest[name] = value
                continue
            field, tier = f"{section}.{name}", match.group(1)
            tier_section = tiers.setdefault(tier, {}).setdefault(section, {})
            if tier not in TIERS:
                problems.append({"field": field, "problem": f"unknown tier; one of {TIERS}"})
            elif isinstance(value, dict):
                tier_section.update(value)
            elif value is None and patch:
                key = PER_TIER_SCALAR_KEY.get(section)
                if key is None:
                    problems.append({"field": field, "problem": "must be an object"})
                else:
                    tier_section[key] = None
            elif section in PER_TIER_SCALAR_KEY:
                tier_section[PER_TIER_SCALAR_KEY[section]] = value
                try:
                    validate_config({section: {PER_TIER_SCALAR_KEY[section]: value}})
                except InvalidRequest:
                    problems.append({"field": field, "problem": "must be a non-negative integer"})
            else:
                problems.append(
                    {"field": field, "problem": f"must be an object of {section} names"}
                )
        if rest or not body:
            global_part[section] = rest
    if problems:
        raise InvalidRequest("the configuration failed validation", details={"errors": problems})
    return global_part, tiers


def without_per_tier_keys(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without per-tier keys in its known sections (a global layer written before
    they were split out kept them literally; they never applied to anyone)."""
    if not any(
        isinstance(doc.get(section), dict)
        and any(PER_TIER_KEY.match(name) for name in doc[section])
        for section in LIMIT_SECTIONS + FLAG_SECTIONS
    ):
        return doc
    return {
        section: {n: v for n, v in body.items() if not PER_TIER_KEY.match(n)}
        if section in LIMIT_SECTIONS + FLAG_SECTIONS and isinstance(body, dict)
        else body
        for section, body in doc.items()
    }


def refuse_per_tier_keys(doc: dict[str, Any], layer: str) -> None:
    """Per-tier keys mean something only in a global write; elsewhere they are a mistake."""
    problems = [
        {
            "field": f"{section}.{name}",
            "problem": f"per-tier keys belong in a global write, not in a {layer} layer",
        }
        for section in LIMIT_SECTIONS + FLAG_SECTIONS
        if isinstance(doc.get(section), dict)
        for name in doc[section]
        if (m := PER_TIER_KEY.match(name)) is not None and m.group(1) in TIERS
    ]
    if problems:
        raise InvalidRequest("the configuration failed validation", details={"errors": problems})


def _unstorable(value: Any, path: str) -> str | None:
    """The path of the first number JSON peers cannot round-trip (None if there is none)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**64 else path
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _unstorable(item, f"{path}.{key}")
        if found is not None:
            return found
    return None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, ``null`` removes a key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: later layers win; objects merge key by key, anything else replaces."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer)
    return merged


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_if_match(header: str | None) -> set[int] | Literal["*"] | None:
    """The versions an ``If-Match`` header accepts (``"12"``, ``W/"12"``, ``12``, ``*``)."""
    if header is None:
        return None
    header = header.strip()
    if header == "*":
        return "*"
    versions: set[int] = set()
    for part in header.split(","):
        tag = part.strip().removeprefix("W/").strip('"')
        if not tag.isdigit() or len(tag) > 16 or int(tag) > MAX_VERSION:
            raise InvalidRequest(
                'If-Match must carry versions as ETags, e.g. "42"',
                details={"header": "If-Match", "value": header[:200]},
            )
        versions.add(int(tag))
    return versions


def etag(version: int) -> str:
    """The ETag of a version."""
    return f'"{version}"'


# -- the read side: history entries mirrored from the view ---------------------------


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One history entry of one layer."""

    scope: LayerScope
    sequence: int
    revision: int
    config: dict[str, Any]
    author: str
    updated_at: str
    action: str
    restored_version: int | None = None
    correlation_id: str | None = None

    def public(self) -> dict[str, Any]:
        """The API form of a history entry (``version`` is the backend revision)."""
        return {
            "version": self.revision,
            "sequence": self.sequence,
            "action": self.action,
            "author": self.author,
            "updated_at": self.updated_at,
            "restored_version": self.restored_version,
            "correlation_id": self.correlation_id,
            "config": self.config,
        }

    @classmethod
    def from_kv(cls, kv: KeyValue) -> ConfigVersion | None:
        """Parse a stored history entry; ``None`` for other or unreadable keys."""
        parsed = parse_history_key(kv.key)
        if parsed is None:
            return None
        try:
            data = orjson.loads(kv.value)
            return cls(
                scope=parsed[0],
                sequence=parsed[1],
                revision=kv.mod_revision,
                config=dict(data["config"]),
                author=str(data.get("author") or "unknown"),
                updated_at=str(data.get("updated_at") or ""),
                action=str(data.get("action") or "put"),
                restored_version=data.get("restored_version"),
                correlation_id=data.get("correlation_id"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring unreadable config entry %s: %s", kv.key, exc)
            return None


class ChangeSignal:
    """Wakes every waiter once per change (one in-memory fan-out per replica).

    Capture :meth:`current` *before* reading state and wait on it afterwards, so a change
    between the read and the wait is never missed.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def current(self) -> asyncio.Event:
        """The event the next change will set."""
        return self._event

    def notify(self) -> None:
        """Wake everyone waiting on the current event."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    def close(self) -> None:
        """Wake everyone for good (hub stopping); streams end."""
        self.closed = True
        self.notify()


class ConfigIndex:
    """Every layer's history, kept current by the view (a listener on ``config/``)."""

    def __init__(self) -> None:
        self.layers: dict[LayerScope, dict[int, ConfigVersion]] = {}
        self.latest: dict[LayerScope, ConfigVersion] = {}
        self.on_change: list[Callable[[], None]] = []

    def reset(self, items: dict[str, KeyValue]) -> None:
        """Rebuild from a snapshot of ``config/``."""
        self.layers = {}
        for kv in items.values():
            entry = ConfigVersion.from_kv(kv)
            if entry is not None:
                self.layers.setdefault(entry.scope, {})[entry.sequence] = entry
        self.latest = {
            scope: entries[max(entries)] for scope, entries in self.layers.items() if entries
        }
        self._changed()

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """Apply one change under ``config/``."""
        parsed = parse_history_key(event.key)
        if parsed is None:
            return
        scope, sequence = parsed
        entries = self.layers.setdefault(scope, {})
        if event.type is EventType.PUT:
            entry = ConfigVersion.from_kv(
                KeyValue(event.key, event.value or b"", event.revision, event.revision)
            )
            if entry is None:
                return
            entries[sequence] = entry
            newest = self.latest.get(scope)
            if newest is None or sequence >= newest.sequence:
                self.latest[scope] = entry
        else:
            entries.pop(sequence, None)
            if not entries:
                self.layers.pop(scope, None)
                self.latest.pop(scope, None)
            elif self.latest.get(scope) is not None and self.latest[scope].sequence == sequence:
                self.latest[scope] = entries[max(entries)]
        self._changed()

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def history(self, scope: LayerScope) -> list[ConfigVersion]:
        """A layer's kept versions, newest first."""
        entries = self.layers.get(scope, {})
        return [entries[seq] for seq in sorted(entries, reverse=True)]


# -- the service ---------------------------------------------------------------------


class ConfigService:
    """Reads (from the view), versioned writes (CAS on the backend) and change waits."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        tenants: TenantDirectory,
        index: ConfigIndex,
        *,
        visibility_timeout: float,
        history_limit: int = 100,
        tier_defaults: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.backend = backend
        self.view = view
        self.tenants = tenants
        self.index = index
        self.visibility_timeout = visibility_timeout
        self.history_limit = history_limit
        self.tier_defaults = tier_defaults or load_tier_defaults()
        self.changes = ChangeSignal()
        index.on_change.append(self.changes.notify)
        tenants.on_change.append(self.changes.notify)

    # -- reads --------------------------------------------------------------------

    def _layer_version(self, scope: LayerScope) -> int:
        entry = self.index.latest.get(scope)
        return entry.revision if entry else 0

    def _layer_config(self, scope: LayerScope) -> dict[str, Any]:
        entry = self.index.latest.get(scope)
        return entry.config if entry else {}

    def tier_of(self, tenant_id: str, asserted_tier: str | None) -> tuple[str, bool]:
        """``(tier, provisioned)``: a provisioned tenant's own tier wins over the header."""
        tenant = self.tenants.get(tenant_id)
        if tenant is not None:
            return tenant.subscription_tier, True
        return asserted_tier or DEFAULT_TIER, False

    def effective_version(self, tenant_id: str, asserted_tier: str | None = None) -> int:
        """The newest revision among the writes that shape this tenant's config."""
        tenant = self.tenants.get(tenant_id)
        tier, _ = self.tier_of(tenant_id, asserted_tier)
        return max(
            self._layer_version(tenant_id),
            self._layer_version(None),
            self._layer_version(TierScope(tier)),
            tenant.revision if tenant else 0,
        )

    def effective(self, tenant_id: str, asserted_tier: str | None = None) -> dict[str, Any]:
        """``GET /config/{tenant_id}``: the spec's shape plus version and layer versions.

        Layers merge in order: tier defaults, global, the tier's global layer, the
        tenant's overrides (later wins). A tenant that is not provisioned gets the tier
        its caller asserts (the spec's gateway example), else the free tier, and
        ``provisioned: false``.
        """
        tier, provisioned = self.tier_of(tenant_id, asserted_tier)
        defaults = self.tier_defaults.get(tier, self.tier_defaults[DEFAULT_TIER])
        config = merge_layers(
            defaults,
            without_per_tier_keys(self._layer_config(None)),
            self._layer_config(TierScope(tier)),
            self._layer_config(tenant_id),
        )
        tenant = self.tenants.get(tenant_id)
        return {
            "tenant_id": tenant_id,
            "subscription_tier": tier,
            "provisioned": provisioned,
            "config": config,
            "version": self.effective_version(tenant_id, asserted_tier),
            "layers": {
                "tier_defaults": tier,
                "tenant_version": tenant.revision if tenant else 0,
                "global_version": self._layer_version(None),
                "tier_version": self._layer_version(TierScope(tier)),
                "overrides_version": self._layer_version(tenant_id),
            },
            "stale": self.view.stale,
        }

    def api_calls_per_hour(self, tenant_id: str, tier: str | None) -> int | None:
        """The tenant's effective ``rate_limits.api_calls_per_hour`` (for the rate limiter).

        The same layers as :meth:`effective`, looked up for one key without merging.
        """
        tier, _ = self.tier_of(tenant_id, tier)
        for layer in (
            self._layer_config(tenant_id),
            self._layer_config(TierScope(tier)),
            self._layer_config(None),
            self.tier_defaults.get(tier, self.tier_defaults[DEFAULT_TIER]),
        ):
            limits = layer.get("rate_limits")
            if isinstance(limits, dict) and isinstance(limits.get("api_calls_per_hour"), int):
                return int(limits["api_calls_per_hour"])
        return None

    def tier_config(self, tier: str) -> dict[str, Any]:
        """``GET /config/tiers/{tier}``: one tier's global layer alone."""
        entry = self.index.latest.get(TierScope(tier))
        return {
            "scope": "tier",
            "tier": tier,
            "config": entry.config if entry else {},
            "version": entry.revision if entry else 0,
            "updated_at": entry.updated_at if entry else None,
            "author": entry.author if entry else None,
            "stale": self.view.stale,
        }

    def global_config(self) -> dict[str, Any]:
        """``GET /config``: the global layer alone."""
        entry = self.index.latest.get(None)
        return {
            "scope": "global",
            "config": entry.config if entry else {},
            "version": entry.revision if entry else 0,
            "updated_at": entry.updated_at if entry else None,
            "author": entry.author if entry else None,
            "stale": self.view.stale,
        }

    def overrides(self, tenant_id: str) -> dict[str, Any]:
        """A tenant's override layer alone."""
        entry = self.index.latest.get(tenant_id)
        return {
            "scope": "tenant",
            "tenant_id": tenant_id,
            "config": entry.config if entry else {},
            "version": entry.revision if entry else 0,
            "updated_at": entry.updated_at if entry else None,
            "author": entry.author if entry else None,
            "stale": self.view.stale,
        }

    def history(self, scope: LayerScope) -> dict[str, Any]:
        """A layer's kept versions, newest first, with author and time."""
        if (
            isinstance(scope, str)
            and self.tenants.get(scope) is None
            and scope not in self.index.layers
        ):
            raise TenantNotFound(
                f"no tenant {scope!r} is provisioned", details={"tenant_id": scope}
            )
        versions = [entry.public() for entry in self.index.history(scope)]
        return scope_fields(scope) | {
            "versions": versions,
            "count": len(versions),
            "history_limit": self.history_limit,
        }

    def version_of(self, scope: LayerScope, asserted_tier: str | None = None) -> int:
        """The version a subscriber (or an ``If-Match``) of ``scope`` compares against."""
        if isinstance(scope, str):
            return self.effective_version(scope, asserted_tier)
        return self._layer_version(scope)

    def body_of(self, scope: Scope, asserted_tier: str | None = None) -> dict[str, Any]:
        """What a subscriber of ``scope`` receives."""
        return self.global_config() if scope is None else self.effective(scope, asserted_tier)

    # -- waiting for changes (long polling, SSE) ------------------------------------

    async def _known(self, index: int, timeout: float) -> bool:
        """Whether this replica's view has reached revision ``index`` (waiting briefly).

        Versions are store-wide revisions: a client may have read ``index`` from a replica
        that is ahead of this one; waiting for the view keeps it from being handed an
        older version. An index the store never reached (the store was replaced) is
        answered with the current state instead of blocking until the store catches up.
        """
        if self.view.revision >= index:
            return True
        try:
            head = await self.backend.current_revision()
        except HubError:
            head = index  # cannot tell: give the view its chance to catch up
        if head < index:
            return False
        return await self.view.wait_for(index, min(timeout, self.visibility_timeout))

    async def wait_past(
        self,
        scope: Scope,
        index: int,
        timeout: float,
        asserted_tier: str | None = None,
        *,
        until: asyncio.Event | None = None,
    ) -> bool:
        """Wait until the scope's version exceeds ``index``; False when ``timeout`` passed.

        ``until``: returns at once when it is set (the caller's grant ended; whoever sets
        it also notifies :attr:`changes`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not await self._known(index, timeout):
            return True
        while not self.changes.closed and not (until is not None and until.is_set()):
            event = self.changes.current()
            if self.version_of(scope, asserted_tier) > index:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return self.version_of(scope, asserted_tier) > index
        return self.version_of(scope, asserted_tier) > index

    async def subscribe(
        self,
        scope: Scope,
        *,
        asserted_tier: str | None,
        after: int | None,
        keepalive: float,
        until: asyncio.Event | None = None,
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Every new version of ``scope`` after ``after``, as full bodies; ``None`` = idle.

        Starts with the current version when it is newer than ``after`` (or when ``after``
        is ``None``), so a reconnecting subscriber gets what it missed. The global layer
        replays each kept history entry it missed, in order; a tenant stream sends the
        current effective config (it is complete, so intermediate effective states are
        superseded). Ends when the hub stops, or when ``until`` is set (the subscriber's
        grant ended; whoever sets it also notifies :attr:`changes`).
        """
        if after is not None and not await self._known(after, self.visibility_timeout):
            after = None  # an id this store never reached: start from the current state
        last = -1 if after is None else after
        while not self.changes.closed and not (until is not None and until.is_set()):
            event = self.changes.current()
            if scope is None:
                if last < 0:  # a new subscriber starts from the current state
                    current = self.global_config()
                    last = current["version"]
                    yield current
                for entry in reversed(self.index.history(None)):
                    if entry.revision > last:
                        last = entry.revision
                        yield self._global_event(entry)
            else:
                version = self.effective_version(scope, asserted_tier)
                if version > last or last < 0:
                    last = version
                    yield self.effective(scope, asserted_tier)
            try:
                await asyncio.wait_for(event.wait(), keepalive)
            except TimeoutError:
                yield None

    def _global_event(self, entry: ConfigVersion) -> dict[str, Any]:
        return {
            "scope": "global",
            "config": entry.config,
            "version": entry.revision,
            "updated_at": entry.updated_at,
            "author": entry.author,
            "stale": self.view.stale,
        }

    # -- writes -------------------------------------------------------------------

    async def write(  # noqa: C901, PLR0915 -- split with config_store (issue 18)
        self,
        scope: LayerScope,
        mode: WriteMode,
        *,
        body: dict[str, Any] | None = None,
        restore_version: int | None = None,
        if_match: set[int] | Literal["*"] | None = None,
        author: str,
        correlation_id: str | None = None,
    ) -> dict[str, Any]:
        """Create the layer's next version; return the new history entry's public form.

        ``put`` replaces the layer with ``body``; ``patch`` applies ``body`` as a JSON
        merge patch; ``rollback`` restores the content of ``restore_version``;
        ``tenant_deleted`` empties a tenant's overrides. The result is validated before
        anything is written. ``if_match``: versions the caller read (the global version,
        or the tenant's effective version); 412 if the current one differs or a
        concurrent write to the same layer wins.
        """
        # The first attempt works from this replica's view (no backend reads); anything
        # that would refuse the write, and any CAS conflict, is re-checked against the
        # backend, so a lagging view costs a retry, never a wrong answer.
        from_view = True
        for _ in range(_CAS_ATTEMPTS):
            state = (
                self._layer_state_from_view(scope, mode)
                if from_view
                else await self._layer_state_from_backend(scope, mode)
            )
            if state is None:  # not provisioned as far as the view knows: ask the backend
                from_view = False
                continue
            entries, newest, current = state
            if if_match is not None and if_match != "*" and current not in if_match:
                if from_view:
                    from_view = False
                    continue
                raise PreconditionFailed(
                    "the configuration changed since the version in If-Match",
                    details={"current_version": current, "if_match": sorted(if_match)},
                )
            missing = mode == "rollback" and all(e.revision != restore_version for e in entries)
            if missing and from_view:
                from_view = False
                continue
            base = newest.config if newest else {}
            restored: int | None = None
            if mode in ("put", "patch") and scope is not None and isinstance(body, dict):
                refuse_per_tier_keys(body, "tier" if isinstance(scope, TierScope) else "tenant")
            if mode == "put":
                config = validate_config(body)
            elif mode == "patch":
                if not isinstance(body, dict):
                    raise InvalidRequest("a merge patch must be a JSON object")
                config = validate_config(merge_patch(base, body))
                if scope is None:
                    config = without_per_tier_keys(config)
            elif mode == "rollback":
                target = next((e for e in entries if e.revision == restore_version), None)
                if target is None:  # (checked against the backend above)
                    raise ConfigVersionNotFound(
                        f"version {restore_version} is not in this layer's history",
                        details={
                            "version": restore_version,
                            "kept_versions": sorted(e.revision for e in entries),
                        },
                    )
                config, restored = target.config, target.revision
            else:
                config = {}
            sequence = newest.sequence + 1 if newest else 1
            record = {
                "config": config,
                "author": author,
                "updated_at": utc_now(),
                "action": mode,
                "restored_version": restored,
                "correlation_id": correlation_id,
            }
            try:
                revision = await self.backend.put(
                    history_key(scope, sequence), orjson.dumps(record), if_revision=0
                )
            except RevisionConflict:
                if if_match is not None and not from_view:
                    raise PreconditionFailed(
                        "a concurrent write to the same configuration won",
                        details={"if_match": sorted(if_match) if if_match != "*" else "*"},
                    ) from None
                # From the view: maybe only the view was behind; the backend decides.
                from_view = False
                await asyncio.sleep(0)
                continue
            if from_view and isinstance(scope, str) and mode != "tenant_deleted":
                await self._undo_if_tenant_gone(scope, author)
            if not await self.view.wait_for(revision, self.visibility_timeout):
                log.warning("config write at revision %d not yet visible here", revision)
            await self._prune(entries, sequence)
            entry = ConfigVersion(
                scope=scope,
                sequence=sequence,
                revision=revision,
                config=config,
                author=author,
                updated_at=str(record["updated_at"]),
                action=mode,
                restored_version=restored,
                correlation_id=correlation_id,
            )
            return (
                entry.public() | scope_fields(scope) | {"effective_version": self.version_of(scope)}
            )
        raise BackendTimeout(
            "too many concurrent writes to this configuration; try again",
            details={"retry_after": 1},
        )

    async def write_global(
        self,
        mode: Literal["put", "patch"],
        body: dict[str, Any],
        *,
        if_match: set[int] | Literal["*"] | None = None,
        author: str,
        correlation_id: str | None = None,
    ) -> dict[str, Any]:
        """A global write (``PUT``/``PATCH /config``) that may carry per-tier values.

        The per-tier values (:func:`split_tier_values`) are merged into their tiers'
        layers, the rest is written to the global layer (``put`` replaces it; a patch
        with nothing left for it writes no global version). Every layer's new content is
        validated before anything is written; ``if_match`` guards the global layer and is
        checked first. The answer is the global layer's write (or current version) with
        ``tiers``: each tier layer's new version.
        """
        global_part, tier_parts = split_tier_values(body, patch=mode == "patch")
        if not tier_parts:
            return await self.write(
                None,
                mode,
                body=global_part,
                if_match=if_match,
                author=author,
                correlation_id=correlation_id,
            )
        # Dry run against this replica's view: stored layers are valid, so a write that
        # passes here cannot fail validation against the backend's newer content.
        base = self._layer_config(None)
        validate_config(global_part if mode == "put" else merge_patch(base, global_part))
        for tier, part in tier_parts.items():
            validate_config(merge_patch(self._layer_config(TierScope(tier)), part))
        if mode == "put" or global_part:
            result = await self.write(
                None,
                mode,
                body=global_part,
                if_match=if_match,
                author=author,
                correlation_id=correlation_id,
            )
        else:
            if if_match is not None and if_match != "*":
                _, _, current = await self._layer_state_from_backend(None, "patch")
                if current not in if_match:
                    raise PreconditionFailed(
                        "the configuration changed since the version in If-Match",
                        details={"current_version": current, "if_match": sorted(if_match)},
                    )
            result = self.global_config() | {"effective_version": self.version_of(None)}
        result["tiers"] = {}
        for tier, part in tier_parts.items():
            written = await self.write(
                TierScope(tier),
                "patch",
                body=part,
                author=author,
                correlation_id=correlation_id,
            )
            result["tiers"][tier] = written
        return result

    async def _undo_if_tenant_gone(self, tenant_id: str, author: str) -> None:
        """After a write checked only against the view: the tenant may have just been removed
        on another replica. Then reset its overrides again and refuse the write."""
        if await self.backend.get(tenant_key(tenant_id)) is not None:
            return
        await self.write(tenant_id, "tenant_deleted", author=author)
        raise TenantNotFound(
            f"tenant {tenant_id!r} was removed while this write was made; it was undone",
            details={"tenant_id": tenant_id},
        )

    def _layer_state_from_view(
        self, scope: LayerScope, mode: WriteMode
    ) -> tuple[list[ConfigVersion], ConfigVersion | None, int] | None:
        """``(entries, newest, current version)`` of a layer as this replica sees it."""
        tenant_scope = isinstance(scope, str)
        if tenant_scope and mode != "tenant_deleted" and self.tenants.get(str(scope)) is None:
            return None
        entries = list(self.index.layers.get(scope, {}).values())
        newest = self.index.latest.get(scope)
        return entries, newest, self.version_of(scope)

    async def _layer_state_from_backend(
        self, scope: LayerScope, mode: WriteMode
    ) -> tuple[list[ConfigVersion], ConfigVersion | None, int]:
        """The same, read from the backend; TenantNotFound for an unknown tenant."""
        tenant_kv = None
        if isinstance(scope, str) and mode != "tenant_deleted":
            tenant_kv = await self.backend.get(tenant_key(scope))
            if tenant_kv is None:
                raise TenantNotFound(
                    f"no tenant {scope!r} is provisioned; POST /tenants first",
                    details={"tenant_id": scope},
                )
        layer = (await self.backend.range(layer_prefix(scope))).items
        entries = [e for e in (ConfigVersion.from_kv(kv) for kv in layer) if e is not None]
        newest = max(entries, key=lambda e: e.sequence) if entries else None
        current = newest.revision if newest else 0
        if isinstance(scope, str):
            tier = DEFAULT_TIER
            if tenant_kv is not None:
                with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
                    tier = str(orjson.loads(tenant_kv.value).get("subscription_tier") or tier)
            shaping = [GLOBAL_HISTORY_PREFIX, layer_prefix(TierScope(tier))]
            for prefix in shaping:
                layer_revs = (kv.mod_revision for kv in (await self.backend.range(prefix)).items)
                current = max(current, max(layer_revs, default=0))
            current = max(current, tenant_kv.mod_revision if tenant_kv else 0)
        return entries, newest, current

    async def _prune(self, entries: list[ConfigVersion], newest_sequence: int) -> None:
        cutoff = newest_sequence - self.history_limit
        for entry in entries:
            if entry.sequence <= cutoff:
                try:
                    await self.backend.delete(history_key(entry.scope, entry.sequence))
                except Exception as exc:  # pruning is best effort; the next write retries
                    log.warning("could not prune config history: %s", exc)
                    return

    async def reset_tenant_overrides(self, tenant_id: str, *, author: str) -> None:
        """Empty a tenant's overrides as a new version (used when the tenant is removed)."""
        await self.write(tenant_id, "tenant_deleted", author=author)

    async def ensure_tenant_overrides_reset(self, tenant_id: str) -> int | None:
        """Reset again if a write slipped in after the reset; the new revision, if any."""
        layer = (await self.backend.range(layer_prefix(tenant_id))).items
        entries = [e for e in (ConfigVersion.from_kv(kv) for kv in layer) if e is not None]
        newest = max(entries, key=lambda e: e.sequence) if entries else None
        if newest is None or newest.action == "tenant_deleted":
            return None
        result = await self.write(tenant_id, "tenant_deleted", author=newest.author)
        return int(result["version"])


_WAIT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0


def parse_wait(value: str | None) -> float:
    """A Consul-style ``wait`` (``30s``, ``500ms``, ``5m``; bare numbers are seconds).

    Defaults to 5 minutes and is capped at 10, as Consul's blocking queries are.
    """
    if value is None or value == "":
        return DEFAULT_WAIT
    match = _WAIT.match(value.strip())
    if match is None:
        raise InvalidRequest(
            "wait must be a duration like 30s, 500ms or 5m",
            details={"parameter": "wait", "value": value[:50]},
        )
    number = float(match.group(1))
    seconds = {"ms": number / 1000, "m": number * 60}.get(match.group(2) or "s", number)
    return min(seconds, MAX_WAIT)
