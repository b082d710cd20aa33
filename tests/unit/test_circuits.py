"""The failure-rate window and one tier's breaker (pybreaker state machine, our trips)."""

from __future__ import annotations

import time

import pybreaker
import pytest

from facade.circuits.breakers import SPEC_POLICIES, CircuitPolicy, FailureRateWindow, TierCircuit


def tier_circuit(policy: CircuitPolicy, minimum_calls: int = 10) -> TierCircuit:
    return TierCircuit(
        "svc", "pro", policy, window_seconds=60, minimum_calls=minimum_calls, half_open_successes=2
    )


def feed(circuit: TierCircuit, failures: int, successes: int, now: float) -> None:
    for _ in range(successes):
        circuit.record(True, 5.0, now)
    for _ in range(failures):
        circuit.record(False, None, now)


def wait_for_state(circuit: TierCircuit, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while circuit.state_name(time.time()) != state:
        assert time.monotonic() < deadline, f"circuit never became {state}"
        time.sleep(0.01)


def test_window_needs_minimum_calls_and_forgets_old_buckets() -> None:
    window = FailureRateWindow(10)
    for _ in range(4):
        window.record(False, None, now=100.0)
    assert not window.exceeds(0.5, minimum_calls=5, now=100.0)
    window.record(False, None, now=101.0)
    assert window.exceeds(0.5, minimum_calls=5, now=101.0)
    assert window.totals(now=109.9) == (5, 5, None)
    assert window.totals(now=110.5) == (1, 1, None)  # the second-100 bucket left the window
    assert window.totals(now=200.0) == (0, 0, None)


def test_window_mean_latency() -> None:
    window = FailureRateWindow(60)
    window.record(True, 10.0, now=1.0)
    window.record(True, 30.0, now=2.0)
    window.record(False, None, now=2.0)
    assert window.totals(now=3.0) == (3, 1, 20.0)


@pytest.mark.parametrize(
    ("tier", "failures_of_20", "trips"),
    [
        ("enterprise", 2, False),  # 10 % is not above 10 %
        ("enterprise", 3, True),
        ("pro", 6, False),
        ("pro", 7, True),
        ("free", 10, False),
        ("free", 11, True),
    ],
)
def test_spec_thresholds_trip_strictly_above_the_rate(
    tier: str, failures_of_20: int, trips: bool
) -> None:
    circuit = tier_circuit(SPEC_POLICIES[tier])
    feed(circuit, failures_of_20, 20 - failures_of_20, now=time.time())
    assert circuit.state_name(time.time()) == ("OPEN" if trips else "CLOSED")


def test_no_trip_below_minimum_calls_even_at_total_failure() -> None:
    circuit = tier_circuit(SPEC_POLICIES["free"], minimum_calls=10)
    feed(circuit, failures=9, successes=0, now=time.time())
    assert circuit.state_name(time.time()) == "CLOSED"
    circuit.record(False, None, time.time())
    assert circuit.state_name(time.time()) == "OPEN"
    assert circuit.storage.details["reason"] == "failure_rate"
    assert circuit.storage.details["calls"] == 10


def test_open_until_timeout_then_half_open_then_closed_on_successes() -> None:
    circuit = tier_circuit(CircuitPolicy(failure_rate=0.5, open_seconds=0.2), minimum_calls=4)
    feed(circuit, failures=4, successes=0, now=time.time())
    retry_at = circuit.retry_at()
    assert retry_at is not None
    assert circuit.state_name(time.time()) == "OPEN"
    circuit.record(True, 5.0, time.time())  # before the timeout: rejected, stays OPEN
    if time.time() < retry_at:
        assert circuit.storage.state == pybreaker.STATE_OPEN
    wait_for_state(circuit, "HALF_OPEN")
    circuit.record(True, 5.0, time.time())
    assert circuit.storage.state == pybreaker.STATE_HALF_OPEN  # needs 2 trial successes
    circuit.record(True, 5.0, time.time())
    assert circuit.state_name(time.time()) == "CLOSED"
    assert circuit.window.totals(time.time())[0] == 0  # window reset on closing


def test_a_failed_trial_call_reopens() -> None:
    circuit = tier_circuit(CircuitPolicy(failure_rate=0.5, open_seconds=0.2), minimum_calls=4)
    feed(circuit, failures=4, successes=0, now=time.time())
    first_open = circuit.storage.opened_at
    wait_for_state(circuit, "HALF_OPEN")
    circuit.record(False, None, time.time())
    assert circuit.storage.state == pybreaker.STATE_OPEN
    assert circuit.storage.opened_at is not None
    assert first_open is not None
    assert circuit.storage.opened_at > first_open
    assert circuit.storage.details == {"reason": "trial_failed"}


def test_state_changes_mark_the_storage_for_persisting() -> None:
    circuit = tier_circuit(SPEC_POLICIES["free"], minimum_calls=2)
    assert not circuit.storage.dirty
    feed(circuit, failures=0, successes=5, now=time.time())
    assert not circuit.storage.dirty  # counters are per replica, never written
    feed(circuit, failures=10, successes=0, now=time.time())
    assert circuit.storage.dirty
    record = circuit.storage.to_record(60)
    assert record["state"] == "OPEN"
    assert record["retry_at"] is not None
    assert record["failure_rate"] == pytest.approx(6 / 11, abs=1e-3)  # tripped on the 6th
