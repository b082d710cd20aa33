"""Layered, versioned configuration (DESIGN.md section 8).

Layers, merged in this order (later wins, objects merge key by key):

1. **tier defaults**: the spec's free / pro / enterprise table, shipped as data in
   ``facade/data/tier_defaults.json``;
2. **global config**: written with ``PUT``/``PATCH /config``;
3. **tier-scoped global config** (one layer per tier, applied to that tier's tenants):
   written with ``PUT``/``PATCH /config/tiers/{tier}``, or by a global write in the
   spec's per-tier shape (``{"rate_limits": {"free_tier": 50, "pro_tier": 200}}``, see
   :func:`facade.tenancy.config_validation.split_tier_values`);
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

This module is the storage and the service. Beside it: the key layout
(:mod:`facade.tenancy.config_keys`), what a layer may hold
(:mod:`facade.tenancy.config_validation`), merging (:mod:`facade.tenancy.config_merge`)
and the tier defaults (:mod:`facade.tenancy.tiers`); ``ETag``, ``If-Match`` and ``wait``
are HTTP, in :mod:`facade.routers.http_conditions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from adapters import Backend, EventType, KeyValue, WatchEvent
from adapters.base import ChangeNotifier
from facade.state.view import StateView
from facade.tenancy.config_keys import (
    GLOBAL_HISTORY_PREFIX,
    LayerScope,
    Scope,
    TierScope,
    WriteMode,
    history_key,
    layer_prefix,
    parse_history_key,
    scope_fields,
)
from facade.tenancy.config_merge import merge_layers, merge_patch
from facade.tenancy.config_validation import (
    refuse_per_tier_keys,
    split_tier_values,
    validate_config,
    without_per_tier_keys,
)
from facade.tenancy.tenant_directory import TenantDirectory, tenant_key
from facade.tenancy.tiers import DEFAULT_TIER, TIER_DEFAULTS
from shared.errors import (
    BackendTimeout,
    ConfigVersionNotFound,
    HubError,
    InvalidRequest,
    PreconditionFailed,
    RevisionConflict,
    TenantNotFound,
)
from shared.timestamps import utc_now

log = logging.getLogger("central_hub.config")

_CAS_ATTEMPTS = 50


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

    def record(self) -> dict[str, Any]:
        """The stored JSON form (the key holds scope and sequence, the backend the revision)."""
        return {
            "config": self.config,
            "author": self.author,
            "updated_at": self.updated_at,
            "action": self.action,
            "restored_version": self.restored_version,
            "correlation_id": self.correlation_id,
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


ChangeSignal = ChangeNotifier
"""Wakes every config waiter once per change (the one notifier pattern of adapters.base)."""


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


def _next_content(
    scope: LayerScope,
    mode: WriteMode,
    body: dict[str, Any] | None,
    newest: ConfigVersion | None,
    entries: list[ConfigVersion],
    restore_version: int | None,
) -> tuple[dict[str, Any], int | None]:
    """A layer's validated next content and the version it restores (``rollback`` only).

    Raises InvalidRequest for a body the layer cannot hold, ConfigVersionNotFound for a
    ``restore_version`` that is not among ``entries``.
    """
    if mode in ("put", "patch") and scope is not None and isinstance(body, dict):
        refuse_per_tier_keys(body, "tier" if isinstance(scope, TierScope) else "tenant")
    if mode == "put":
        return validate_config(body), None
    if mode == "patch":
        if not isinstance(body, dict):
            raise InvalidRequest("a merge patch must be a JSON object")
        config = validate_config(merge_patch(newest.config if newest else {}, body))
        return (without_per_tier_keys(config) if scope is None else config), None
    if mode == "rollback":
        target = next((e for e in entries if e.revision == restore_version), None)
        if target is None:  # (checked against the backend by the caller)
            raise ConfigVersionNotFound(
                f"version {restore_version} is not in this layer's history",
                details={
                    "version": restore_version,
                    "kept_versions": sorted(e.revision for e in entries),
                },
            )
        return target.config, target.revision
    return {}, None


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
        self.tier_defaults = tier_defaults or TIER_DEFAULTS
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
        return self._layer_answer(TierScope(tier), {"scope": "tier", "tier": tier})

    def global_config(self) -> dict[str, Any]:
        """``GET /config``: the global layer alone."""
        return self._layer_answer(None, {"scope": "global"})

    def overrides(self, tenant_id: str) -> dict[str, Any]:
        """A tenant's override layer alone."""
        return self._layer_answer(tenant_id, {"scope": "tenant", "tenant_id": tenant_id})

    def _layer_answer(self, scope: LayerScope, named: dict[str, Any]) -> dict[str, Any]:
        """One layer's newest version as the API shows it, after the fields naming it."""
        entry = self.index.latest.get(scope)
        return {
            **named,
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

    async def write(
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
            accepted = if_match if isinstance(if_match, set) else None  # "*": any version
            stale = accepted is not None and current not in accepted
            missing = mode == "rollback" and all(e.revision != restore_version for e in entries)
            if from_view and (stale or missing):
                from_view = False
                continue
            if stale and accepted is not None:
                raise PreconditionFailed(
                    "the configuration changed since the version in If-Match",
                    details={"current_version": current, "if_match": sorted(accepted)},
                )
            config, restored = _next_content(scope, mode, body, newest, entries, restore_version)
            sequence = newest.sequence + 1 if newest else 1
            entry = ConfigVersion(
                scope=scope,
                sequence=sequence,
                revision=0,  # the backend's revision, known once written
                config=config,
                author=author,
                updated_at=utc_now(),
                action=mode,
                restored_version=restored,
                correlation_id=correlation_id,
            )
            try:
                revision = await self.backend.put(
                    history_key(scope, sequence), orjson.dumps(entry.record()), if_revision=0
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
            return await self._written(
                replace(entry, revision=revision), entries, checked_in_view=from_view
            )
        raise BackendTimeout(
            "too many concurrent writes to this configuration; try again",
            details={"retry_after": 1},
        )

    async def _written(
        self, entry: ConfigVersion, entries: list[ConfigVersion], *, checked_in_view: bool
    ) -> dict[str, Any]:
        """After a write landed: undo it if its tenant just went, wait until this replica's
        view has it, prune the layer's history; the entry's public form."""
        scope = entry.scope
        if checked_in_view and isinstance(scope, str) and entry.action != "tenant_deleted":
            await self._undo_if_tenant_gone(scope, entry.author)
        if not await self.view.wait_for(entry.revision, self.visibility_timeout):
            log.warning("config write at revision %d not yet visible here", entry.revision)
        await self._prune(entries, entry.sequence)
        return entry.public() | scope_fields(scope) | {"effective_version": self.version_of(scope)}

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
