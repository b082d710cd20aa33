"""PerformanceTracker: histograms in an injected registry, in-process percentiles."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from shared.performance import PerformanceTracker, percentile


class FakeClock:
    """A clock the test advances by hand, so no test depends on real durations."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sample(registry: CollectorRegistry, suffix: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"aitrading_operation_duration_seconds_{suffix}", labels)


def test_measure_feeds_the_histogram(registry: CollectorRegistry) -> None:
    clock = FakeClock()
    tracker = PerformanceTracker(service_name="api-gateway", registry=registry, clock=clock)
    for step in (0.002, 0.004, 0.2):
        with tracker.measure("websocket_processing"):
            clock.now += step
    labels = {"service": "api-gateway", "operation": "websocket_processing", "outcome": "ok"}
    assert sample(registry, "count", **labels) == 3
    assert sample(registry, "sum", **labels) == pytest.approx(0.206)
    assert sample(registry, "bucket", le="0.005", **labels) == 2
    assert sample(registry, "bucket", le="0.25", **labels) == 3
    text = generate_latest(registry).decode()
    assert 'operation="websocket_processing"' in text


def test_exceptions_are_recorded_as_errors_and_reraised(registry: CollectorRegistry) -> None:
    clock = FakeClock()
    tracker = PerformanceTracker("svc", registry=registry, clock=clock)

    def divide() -> float:
        with tracker.measure("divide"):
            clock.now += 0.5
            return 1 / 0

    with pytest.raises(ZeroDivisionError):
        divide()
    assert sample(registry, "count", service="svc", operation="divide", outcome="error") == 1
    stats = tracker.stats("divide")
    assert stats.count == 1
    assert stats.errors == 1
    assert stats.error_rate == 1.0
    assert stats.max == pytest.approx(0.5)


def test_decorator_sync_and_async(registry: CollectorRegistry) -> None:
    clock = FakeClock()
    tracker = PerformanceTracker("svc", registry=registry, clock=clock)

    @tracker.track("risk_check")
    def check(x: int) -> int:
        clock.now += 0.01
        return x * 2

    @tracker.track
    async def predict(x: int) -> int:
        await asyncio.sleep(0)
        clock.now += 0.03
        return x + 1

    assert check(21) == 42
    assert asyncio.run(predict(1)) == 2
    assert check.__name__ == "check"
    assert tracker.operations() == sorted(["risk_check", predict.__qualname__])
    assert tracker.stats("risk_check").p50 == pytest.approx(0.01)
    assert tracker.stats(predict.__qualname__).count == 1


def test_percentiles_over_the_recent_window(registry: CollectorRegistry) -> None:
    tracker = PerformanceTracker("svc", registry=registry, window=100)
    for ms in range(1, 201):  # 1..200 ms; the window keeps 101..200
        tracker.record("op", ms / 1000)
    p = tracker.percentiles("op", (0, 50, 99, 100))
    assert p[0] == pytest.approx(0.101)
    assert p[50] == pytest.approx(0.1505)
    assert p[99] == pytest.approx(0.19901)
    assert p[100] == pytest.approx(0.200)
    stats = tracker.stats("op")
    assert stats.count == 200  # totals cover everything, percentiles only the window
    assert stats.window == 100
    assert stats.mean == pytest.approx(0.1005)
    assert tracker.snapshot()["op"]["p50_ms"] == pytest.approx(150.5)


def test_two_trackers_share_one_registry(registry: CollectorRegistry) -> None:
    a = PerformanceTracker("svc-a", registry=registry)
    b = PerformanceTracker("svc-b", registry=registry)
    a.record("op", 0.001)
    b.record("op", 0.002)
    assert a.histogram is b.histogram
    assert sample(registry, "count", service="svc-b", operation="op", outcome="ok") == 1


def test_no_samples_yet() -> None:
    tracker = PerformanceTracker("svc", registry=CollectorRegistry())
    assert math.isnan(tracker.stats("nothing").p99)
    assert tracker.stats("nothing").to_dict()["p99_ms"] is None
    assert percentile([3.0], 99) == 3.0
