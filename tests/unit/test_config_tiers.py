"""Per-tier values in global writes, and grants that end long-lived requests."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from adapters import EventType, KeyValue, WatchEvent
from facade.access.tokens import (
    ANONYMOUS_READER,
    CONFIGURED_ADMIN_ID,
    TOKENS_PREFIX,
    GrantWatch,
    Role,
    principal_for,
)
from facade.tenancy.config_validation import split_tier_values, without_per_tier_keys
from shared.errors import InvalidRequest


def test_the_specs_payload_splits_into_each_tiers_hourly_limit() -> None:
    spec = {"rate_limits": {"free_tier": 50, "pro_tier": 200, "enterprise_tier": 1000}}
    global_part, tiers = split_tier_values(spec, patch=True)
    assert global_part == {}
    assert tiers == {
        "free": {"rate_limits": {"api_calls_per_hour": 50}},
        "pro": {"rate_limits": {"api_calls_per_hour": 200}},
        "enterprise": {"rate_limits": {"api_calls_per_hour": 1000}},
    }


def test_other_keys_stay_global_and_objects_set_names() -> None:
    doc = {
        "rate_limits": {"burst": 5, "pro_tier": {"websocket_connections": 60}},
        "features": {"enterprise_tier": {"custom_models": False}},
        "custom": {"free_tier": "kept as given"},
    }
    global_part, tiers = split_tier_values(doc, patch=False)
    assert global_part == {"rate_limits": {"burst": 5}, "custom": {"free_tier": "kept as given"}}
    assert tiers == {
        "pro": {"rate_limits": {"websocket_connections": 60}},
        "enterprise": {"features": {"custom_models": False}},
    }
    assert split_tier_values({"rate_limits": {"free_tier": None}}, patch=True)[1] == {
        "free": {"rate_limits": {"api_calls_per_hour": None}}
    }


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"rate_limits": {"gold_tier": 5}}, "rate_limits.gold_tier"),
        ({"rate_limits": {"free_tier": -1}}, "rate_limits.free_tier"),
        ({"rate_limits": {"free_tier": None}}, "rate_limits.free_tier"),  # null only in PATCH
        ({"features": {"pro_tier": True}}, "features.pro_tier"),
        ({"resource_limits": {"pro_tier": 5}}, "resource_limits.pro_tier"),
    ],
)
def test_bad_per_tier_values_are_refused(doc: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        split_tier_values(doc, patch=False)
    assert raised.value.details["errors"][0]["field"] == field


def test_literal_per_tier_keys_of_an_old_global_layer_are_ignored() -> None:
    old = {"rate_limits": {"pro_tier": 200, "x": 1}, "custom": {"pro_tier": 1}}
    assert without_per_tier_keys(old) == {"rate_limits": {"x": 1}, "custom": {"pro_tier": 1}}
    clean = {"rate_limits": {"x": 1}}
    assert without_per_tier_keys(clean) is clean


def _token_event(token_id: str, record: dict[str, object] | None) -> WatchEvent:
    key = TOKENS_PREFIX + token_id
    if record is None:
        return WatchEvent(EventType.DELETE, key, revision=9)
    return WatchEvent(EventType.PUT, key, revision=9, value=orjson.dumps(record))


async def test_grants_end_on_revocation_deletion_and_tenant_removal() -> None:
    tenants = {"acme"}
    woken: list[int] = []
    watch = GrantWatch(lambda t: t in tenants)
    watch.on_end.append(lambda: woken.append(1))
    revoked = watch.open(principal_for(Role.READ_ONLY, "aa11"))
    deleted = watch.open(principal_for(Role.READ_ONLY, "bb22"))
    tenant = watch.open(principal_for(Role.TENANT, "cc33", tenant_id="acme"))
    untouched = watch.open(principal_for(Role.READ_ONLY, "dd44"))

    watch.apply(_token_event("aa11", {"revoked_at": "2026-01-01T00:00:00Z"}), None)
    watch.apply(_token_event("bb22", None), None)
    watch.apply(_token_event("dd44", {"revoked_at": None}), None)  # another change: still valid
    assert revoked.ended.is_set()
    assert "revoked" in str(revoked.reason)
    assert deleted.ended.is_set()
    assert not untouched.ended.is_set()
    assert not tenant.ended.is_set()

    tenants.clear()
    watch.tenants_changed()
    assert tenant.ended.is_set()
    assert "removed" in str(tenant.reason)
    assert len(woken) == 3
    assert revoked.error().to_payload()["error"]["code"] == "unauthorized"


async def test_a_resync_ends_only_grants_of_stored_tokens_now_gone() -> None:
    watch = GrantWatch(lambda t: True)
    stored = watch.open(principal_for(Role.READ_ONLY, "aa11"))
    kept = watch.open(principal_for(Role.READ_ONLY, "bb22"))
    configured = watch.open(principal_for(Role.ADMIN, CONFIGURED_ADMIN_ID))
    anonymous = watch.open(ANONYMOUS_READER)
    record = KeyValue(TOKENS_PREFIX + "bb22", orjson.dumps({"revoked_at": None}), 1, 1)
    watch.reset({record.key: record})
    assert stored.ended.is_set()
    assert not kept.ended.is_set()
    assert not configured.ended.is_set()  # no token record: nothing to revoke
    assert not anonymous.ended.is_set()
    watch.close(kept)
    watch.apply(_token_event("bb22", None), None)
    assert not kept.ended.is_set()  # closed: no longer watched


async def test_a_grant_ends_when_its_token_expires() -> None:
    watch = GrantWatch(lambda t: True)
    principal = principal_for(Role.READ_ONLY, "ee55", expires_at=time.time() + 0.05)
    grant = watch.open(principal)
    await asyncio.wait_for(grant.ended.wait(), 30)
    assert grant.reason == "the token has expired"
