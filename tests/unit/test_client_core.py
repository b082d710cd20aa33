"""The pure parts of the hub client: retry schedule, SSE decoding, request building."""

from __future__ import annotations

import random

import pytest

from shared.client import ClientCore, RetryPolicy, SSEDecoder, registration_body
from shared.tenancy import TenantContext


def test_backoff_grows_to_its_cap_with_jitter_inside_bounds() -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.1, max_delay=1.0)
    rng = random.Random(7)
    for attempt, cap in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        delays = {policy.delay(attempt, rng) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1  # jittered, so clients that failed together spread out


def test_retry_policy_needs_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)


def test_sse_decoder_follows_the_event_stream_format() -> None:
    decoder = SSEDecoder()
    lines = [
        ": keep-alive comment",
        "event: config",
        "id: 7",
        'data: {"tenant_id": "t1",',
        'data:  "version": 7}',
        "",
        "",
        "retry: 3000",
        "data: plain",
        "",
    ]
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    first, second = events
    assert first.event == "config"
    assert first.id == "7"
    assert first.data == '{"tenant_id": "t1",\n "version": 7}'
    assert second.event == "message"
    assert second.retry == 3000
    assert second.data == "plain"
    assert decoder.last_event_id == "7"


def test_paths_escape_names_and_ids() -> None:
    core = ClientCore()
    call = core.deregister("svc", "../../config/x")
    assert call.path == "/services/svc/instances/..%2F..%2Fconfig%2Fx"
    assert call.method == "DELETE"


def test_registration_body_drops_nothing_the_hub_needs() -> None:
    body = registration_body(
        "trading-engine", "10.0.0.7", 8007, subscription_requirements=["pro"], ttl=10
    )
    assert body["subscription_requirements"] == ["pro"]
    assert body["protocol"] == "http"
    call = ClientCore().register(body)
    assert "instance_id" not in call.json_body  # None fields are left to hub defaults
    assert call.json_body["ttl"] == 10


def test_discovery_cache_keys_separate_tenants() -> None:
    core = ClientCore()
    a = core.discover("svc", TenantContext(tenant_id="a", tier="pro"))
    b = core.discover("svc", TenantContext(tenant_id="b", tier="pro"))
    none = core.discover("svc")
    assert len({a.cache_key, b.cache_key, none.cache_key}) == 3
    assert a.headers["x-tenant-id"] == "a"
    assert "x-tenant-id" not in none.headers


def test_quota_actions_are_checked_and_only_check_is_retried() -> None:
    core = ClientCore()
    assert core.quota("check", "t", "api_calls").idempotent
    allocate = core.quota("allocate", "t", "api_calls", 5)
    assert not allocate.idempotent
    assert allocate.json_body == {"amount": 5}
    assert allocate.path == "/tenants/t/resources/api_calls/allocate"
    with pytest.raises(ValueError, match="unknown quota action"):
        core.quota("steal", "t", "api_calls")


def test_long_poll_gets_a_timeout_longer_than_its_wait() -> None:
    call = ClientCore().get_config("company_abc", index=4, wait=20)
    assert call.params == {"index": "4", "wait": "20s"}
    assert call.timeout is not None
    assert call.timeout > 20


def test_config_watch_hands_out_each_version_once() -> None:
    core = ClientCore(retry=RetryPolicy(base_delay=0.1, max_delay=1.0))
    watch = core.config_watch("company_abc", wait=25)
    assert watch.next_call().params is None  # first a plain read
    assert watch.accept(ClientCore.parse_config({"version": 3, "config": {}}, "company_abc"))
    assert watch.next_call().params == {"index": "3", "wait": "25s"}
    same = ClientCore.parse_config({"version": 3}, "company_abc")
    assert not watch.accept(same)  # the long poll ran out without a change
    assert watch.accept(ClientCore.parse_config({"version": 4}, "company_abc"))
    delays = [watch.backoff() for _ in range(10)]
    assert all(0 < d <= 1.0 for d in delays)
    assert watch.failures == 10
    watch.accept(ClientCore.parse_config({"version": 5}, "company_abc"))
    assert watch.failures == 0


def test_discovery_strategy_is_a_parameter_and_part_of_the_cache_key() -> None:
    core = ClientCore()
    default = core.discover("svc")
    least = core.discover("svc", strategy="least_load")
    assert default.params is None
    assert least.params == {"strategy": "least_load"}
    assert default.cache_key != least.cache_key


def test_circuit_state_of_the_callers_tier_or_a_named_one() -> None:
    body = {
        "state": "closed",
        "tiers": {"free": {"state": "OPEN"}, "pro": {"state": "HALF_OPEN"}},
    }
    assert ClientCore.circuit_state(body) == "CLOSED"
    assert ClientCore.circuit_state(body, "free") == "OPEN"
    assert ClientCore.circuit_state(body, "pro") == "HALF_OPEN"
    assert ClientCore.circuit_state(body, "enterprise") == ""


def test_registration_check_is_sent_only_when_given() -> None:
    plain = ClientCore().register(registration_body("svc", "127.0.0.1", 80))
    assert "check" not in plain.json_body
    checked = ClientCore().register(
        registration_body("svc", "127.0.0.1", 80, check={"kind": "tcp", "interval": 5})
    )
    assert checked.json_body["check"] == {"kind": "tcp", "interval": 5}
