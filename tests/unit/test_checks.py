"""The health state machine and its write policy (pure logic, time passed in)."""

from __future__ import annotations

import pytest

from facade.health.tracker import HealthTracker, latency_changed
from facade.state.check_spec import CheckSpec
from shared.timestamps import parse_iso_utc


def spec(**overrides: object) -> CheckSpec:
    base: dict[str, object] = {"kind": "http", "failures_before_critical": 3}
    base |= {"successes_before_passing": 2, "degraded_latency_ms": 100.0}
    return CheckSpec(**(base | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("protocol", "ttl", "kind"),
    [("http", None, "http"), ("https", 30, "http"), ("grpc", 30, "ttl"), ("tcp", None, "tcp")],
)
def test_default_kind_follows_protocol_then_ttl(protocol: str, ttl: int | None, kind: str) -> None:
    resolved = CheckSpec.resolve(None, protocol=protocol, ttl=ttl)
    assert resolved.kind == kind
    assert (resolved.interval, resolved.timeout) == (10.0, 2.0)
    assert resolved.probed is (kind != "ttl")


def test_resolve_keeps_declared_values_and_ignores_garbage() -> None:
    resolved = CheckSpec.resolve(
        {"kind": "tcp", "interval": 5, "deregister_after": 120, "timeout": "soon"},
        protocol="http",
        ttl=None,
    )
    assert (resolved.kind, resolved.interval, resolved.deregister_after) == ("tcp", 5.0, 120.0)
    assert resolved.timeout == 2.0
    assert CheckSpec.resolve(resolved.to_record(), protocol="http", ttl=None) == resolved


def test_unchecked_instance_is_healthy_and_a_first_failure_is_critical_at_once() -> None:
    tracker = HealthTracker(spec())
    assert tracker.status == "healthy"
    assert tracker.observe(False, None, now=100.0) == "critical"
    assert tracker.critical_since == 100.0


def test_passing_instance_needs_consecutive_failures_before_critical() -> None:
    tracker = HealthTracker(spec())
    tracker.observe(True, 10.0, now=1)
    assert tracker.observe(False, None, now=2) == "healthy"
    assert tracker.observe(False, None, now=3) == "healthy"
    assert tracker.observe(False, None, now=4) == "critical"
    assert tracker.critical_since == 4


def test_flapping_never_reaches_critical() -> None:
    tracker = HealthTracker(spec())
    tracker.observe(True, 10.0, now=0)
    for i in range(1, 40):
        tracker.observe(i % 3 != 0, 10.0, now=i)  # two failures at most in a row
        assert tracker.status == "healthy"


def test_recovery_needs_consecutive_successes() -> None:
    tracker = HealthTracker(spec())
    tracker.observe(False, None, now=0)
    assert tracker.observe(True, 10.0, now=1) == "critical"
    assert tracker.observe(False, None, now=2) == "critical"
    assert tracker.observe(True, 10.0, now=3) == "critical"
    assert tracker.observe(True, 10.0, now=4) == "healthy"
    assert tracker.critical_since is None


def test_slow_probes_degrade_with_the_same_thresholds() -> None:
    tracker = HealthTracker(spec())
    tracker.observe(True, 10.0, now=0)
    assert tracker.observe(True, 500.0, now=1) == "healthy"  # one slow probe is noise
    assert tracker.observe(True, 500.0, now=2) == "healthy"
    assert tracker.observe(True, 500.0, now=3) == "degraded"
    assert tracker.observe(True, 10.0, now=4) == "degraded"
    assert tracker.observe(True, 10.0, now=5) == "healthy"


def test_recovering_slow_instance_comes_back_degraded() -> None:
    tracker = HealthTracker(spec())
    tracker.observe(False, None, now=0)
    tracker.observe(True, 900.0, now=1)
    assert tracker.observe(True, 900.0, now=2) == "degraded"


def test_deregister_after_counts_from_becoming_critical() -> None:
    tracker = HealthTracker(spec(deregister_after=60.0))
    tracker.observe(True, 10.0, now=0)
    for t in (10, 20, 30):
        tracker.observe(False, None, now=t)
    assert tracker.critical_since == 30
    assert not tracker.should_deregister(now=89)
    assert tracker.should_deregister(now=90)
    assert not HealthTracker(spec()).should_deregister(now=10**9)


def test_writes_only_on_meaningful_change() -> None:
    tracker = HealthTracker(spec())
    assert not tracker.should_write(now=0, refresh_seconds=60)  # nothing observed yet
    tracker.observe(True, 10.0, now=1)
    assert tracker.should_write(now=1, refresh_seconds=60)  # the first result
    tracker.mark_written(now=1)
    for t in range(2, 30):
        tracker.observe(True, 11.0 if t % 2 else 9.0, now=t)
        assert not tracker.should_write(now=t, refresh_seconds=60), f"wrote at probe {t}"
    tracker.observe(True, 10.0, now=61)
    assert tracker.should_write(now=61, refresh_seconds=60)  # refresh keeps last_check fresh
    tracker.mark_written(now=61)
    tracker.observe(False, None, now=62)
    assert not tracker.should_write(now=62, refresh_seconds=60)  # still healthy, 1 failure
    tracker.observe(False, None, now=63)
    tracker.observe(False, None, now=64)
    assert tracker.status == "critical"
    assert tracker.should_write(now=64, refresh_seconds=60)


def test_latency_doubling_by_a_tenth_of_the_threshold_is_a_meaningful_change() -> None:
    assert not latency_changed(100.0, 190.0, degraded_latency_ms=500)
    assert latency_changed(100.0, 200.0, degraded_latency_ms=500)
    assert latency_changed(100.0, 40.0, degraded_latency_ms=500)
    assert not latency_changed(2.0, 40.0, degraded_latency_ms=500)  # loopback jitter
    assert latency_changed(2.0, 40.0, degraded_latency_ms=100)
    assert latency_changed(None, 5.0, degraded_latency_ms=500)


def test_record_has_the_seed_fields_and_survives_a_leader_change() -> None:
    tracker = HealthTracker(spec())
    tracker.observe(True, 12.4, now=1_700_000_000.0)
    for t in range(3):
        tracker.observe(False, None, now=1_700_000_001.0 + t)
    record = tracker.record()
    assert record["status"] == "critical"
    assert record["latency"] == 12
    assert parse_iso_utc(record["last_check"]) == pytest.approx(1_700_000_003.0)
    assert record["last_check"].endswith("Z")
    resumed = HealthTracker.from_record(spec(), record)
    assert (resumed.status, resumed.critical_since) == ("critical", tracker.critical_since)
    assert not resumed.should_write(now=1_700_000_004.0, refresh_seconds=60)
    resumed.observe(True, 10.0, now=1_700_000_005.0)
    assert resumed.status == "critical"  # still needs two successes in a row
