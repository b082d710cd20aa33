"""Config validation, merging, versions in headers, durations, tier data and signatures."""

from __future__ import annotations

import pytest

from facade.routers.http_conditions import MAX_WAIT, parse_if_match, parse_wait
from facade.tenancy.config_keys import history_key, parse_history_key
from facade.tenancy.config_merge import merge_layers, merge_patch
from facade.tenancy.config_validation import validate_config
from facade.tenancy.tiers import load_tier_defaults
from facade.tenancy.webhooks import sign, verify
from shared.errors import InvalidRequest


def test_tier_defaults_are_the_spec_table() -> None:
    defaults = load_tier_defaults()
    assert set(defaults) == {"free", "pro", "enterprise"}
    assert defaults["free"]["rate_limits"] == {
        "api_calls_per_hour": 1000,
        "websocket_connections": 5,
    }
    assert defaults["pro"]["rate_limits"]["api_calls_per_hour"] == 10000
    assert defaults["enterprise"]["rate_limits"]["websocket_connections"] == 500
    assert defaults["free"]["features"]["advanced_ai"] is False
    assert defaults["enterprise"]["features"]["custom_models"] is True
    assert defaults["pro"]["resource_limits"] == {
        "max_concurrent_requests": 100,
        "max_data_storage_mb": 1000,
    }
    for tier in defaults.values():  # every quota resource has a limit in every tier
        assert set(tier["resource_limits"]) == {"max_concurrent_requests", "max_data_storage_mb"}


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"rate_limits": {"api_calls_per_hour": 0, "free_tier": 50}},
        {"features": {"a": True, "b": False}},
        {"resource_limits": {"max_data_storage_mb": 2**53 - 1}},
        {"custom": {"anything": [1, "two", None]}, "flag": True, "n": -5},
    ],
)
def test_valid_configs_pass_unchanged(doc: dict[str, object]) -> None:
    assert validate_config(doc) == doc


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"rate_limits": {"x": -1}}, "rate_limits.x"),
        ({"rate_limits": {"x": 1.0}}, "rate_limits.x"),
        ({"rate_limits": {"x": True}}, "rate_limits.x"),
        ({"rate_limits": {"x": None}}, "rate_limits.x"),
        ({"resource_limits": {"x": "10"}}, "resource_limits.x"),
        ({"resource_limits": {"x": 2**53}}, "resource_limits.x"),
        ({"features": {"x": 1}}, "features.x"),
        ({"features": {"x": "true"}}, "features.x"),
        ({"features": []}, "features"),
        ({"rate_limits": {"bad name": 1}}, "rate_limits.bad name"),
        ({"": 1}, ""),
        ({"custom": None}, "custom"),
        ({"custom": {"huge": 10**30}}, "custom.huge"),
    ],
)
def test_invalid_configs_name_the_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_config(doc)
    assert field in [p["field"] for p in info.value.details["errors"]]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_config({"rate_limits": {"a": -1, "b": -2}, "features": {"c": 0}})
    assert len(info.value.details["errors"]) == 3
    with pytest.raises(InvalidRequest):
        validate_config(["not", "an", "object"])


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1}
    patch = {"a": {"b": None, "x": 3}, "d": [3], "e": None, "f": {"g": None}}
    assert merge_patch(target, patch) == {"a": {"c": 2, "x": 3}, "d": [3], "f": {}}
    assert target == {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1}  # not modified


def test_layers_merge_deeply_later_wins() -> None:
    tier = {"rate_limits": {"api": 10, "ws": 5}, "features": {"a": True}}
    global_ = {"rate_limits": {"api": 20}, "notes": ["g"]}
    tenant = {"rate_limits": {"ws": 1}, "features": {"b": True}, "notes": ["t"]}
    assert merge_layers(tier, global_, tenant) == {
        "rate_limits": {"api": 20, "ws": 1},
        "features": {"a": True, "b": True},
        "notes": ["t"],
    }
    assert tier == {"rate_limits": {"api": 10, "ws": 5}, "features": {"a": True}}


def test_if_match_forms() -> None:
    assert parse_if_match(None) is None
    assert parse_if_match("*") == "*"
    assert parse_if_match('"12"') == {12}
    assert parse_if_match('W/"12", "13"') == {12, 13}
    assert parse_if_match("14") == {14}
    for bad in ('"abc"', f'"{2**64}"', f'"{2**53}"'):
        with pytest.raises(InvalidRequest):
            parse_if_match(bad)


def test_wait_durations_like_consul() -> None:
    assert parse_wait("30s") == 30
    assert parse_wait("500ms") == 0.5
    assert parse_wait("2m") == 120
    assert parse_wait("7") == 7
    assert parse_wait("59m") == MAX_WAIT  # capped at 10 minutes
    assert parse_wait(None) == 300
    for bad in ("soon", "-1s", "1h", "s"):
        with pytest.raises(InvalidRequest):
            parse_wait(bad)


def test_history_keys_sort_by_version_and_parse_back() -> None:
    assert history_key(None, 7) < history_key(None, 10)
    assert parse_history_key(history_key(None, 7)) == (None, 7)
    assert parse_history_key(history_key("company_abc", 12)) == ("company_abc", 12)
    assert parse_history_key("config/tenants/x/other/1") is None
    assert parse_history_key("tenants/x") is None


def test_signatures_verify_only_with_the_secret_and_body() -> None:
    body = b'{"version": 3}'
    signature = sign("s3cret-s3cret-s3cret", body)
    assert signature.startswith("sha256=")
    assert verify("s3cret-s3cret-s3cret", body, signature)
    assert not verify("other-secret-other", body, signature)
    assert not verify("s3cret-s3cret-s3cret", body + b" ", signature)
