"""PerformanceTracker: time operations into Prometheus histograms and in-process percentiles.

Usage, as in the spec::

    tracker = PerformanceTracker(service_name="api-gateway")
    with tracker.measure("websocket_processing"):
        process_websocket_message()

    @tracker.track("risk_check")          # sync or async functions
    async def check_risk(order): ...

    tracker.stats("websocket_processing").p99   # seconds, from recent samples

Every measurement feeds one histogram, ``<namespace>_operation_duration_seconds`` with
labels ``service``, ``operation`` and ``outcome`` (``ok``/``error``), in the registry
given (the process-wide default registry unless one is injected, e.g. in tests). The
in-process percentiles come from a bounded window of the most recent samples per
operation, so they describe current behaviour rather than all-time history.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast, overload

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

P = ParamSpec("P")
R = TypeVar("R")

# Latency buckets from 100 µs to 10 s: trading paths care about the sub-millisecond end,
# batch jobs about the seconds end.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# One histogram per (registry, metric name): prometheus_client refuses to register the
# same name twice, and several trackers (one per service in a process, or per test)
# must be able to share a registry.
_HISTOGRAMS: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Histogram]] = (
    weakref.WeakKeyDictionary()
)
_HISTOGRAMS_LOCK = threading.Lock()


def _histogram(registry: CollectorRegistry, name: str, buckets: tuple[float, ...]) -> Histogram:
    """The histogram of that name in ``registry``, created on first use."""
    with _HISTOGRAMS_LOCK:
        per_registry = _HISTOGRAMS.setdefault(registry, {})
        histogram = per_registry.get(name)
        if histogram is None:
            histogram = Histogram(
                name,
                "Duration of tracked operations, by service, operation and outcome.",
                labelnames=("service", "operation", "outcome"),
                buckets=buckets,
                registry=registry,
            )
            per_registry[name] = histogram
        return histogram


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Summary of one operation: totals since start, percentiles over the recent window.

    Durations are in seconds; percentiles are ``nan`` before the first sample.
    """

    operation: str
    count: int
    errors: int
    total_seconds: float
    window: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    @property
    def mean(self) -> float:
        """Mean duration since start (seconds)."""
        return self.total_seconds / self.count if self.count else math.nan

    @property
    def error_rate(self) -> float:
        """Fraction of measurements that ended in an exception."""
        return self.errors / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, durations in milliseconds (``None`` before any sample)."""

        def ms(value: float) -> float | None:
            """Seconds as milliseconds, ``None`` for no value."""
            return None if math.isnan(value) else round(value * 1000, 4)

        return {
            "operation": self.operation,
            "count": self.count,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "mean_ms": ms(self.mean),
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "p95_ms": ms(self.p95),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
            "window": self.window,
        }


class _Samples:
    """Recent durations and all-time totals of one operation."""

    __slots__ = ("count", "errors", "recent", "total")

    def __init__(self, window: int) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.count = 0
        self.errors = 0
        self.total = 0.0


class PerformanceTracker:
    """Times the operations of one service.

    Args:
        service_name: value of the ``service`` label.
        registry: Prometheus registry to register the histogram in (default: the global
            one that ``prometheus_client`` exposes).
        namespace: metric name prefix.
        buckets: histogram bucket upper bounds in seconds.
        window: recent samples kept per operation for in-process percentiles.
        clock: monotonic time source in seconds, injectable for tests.
    """

    def __init__(
        self,
        service_name: str,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "aitrading",
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        window: int = 2048,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.service_name = service_name
        self.registry = registry if registry is not None else REGISTRY
        self.metric_name = f"{namespace}_operation_duration_seconds"
        self.histogram = _histogram(self.registry, self.metric_name, tuple(buckets))
        self.window = window
        self._clock = clock
        self._samples: dict[str, _Samples] = {}
        self._lock = threading.Lock()

    def record(self, operation: str, seconds: float, *, success: bool = True) -> None:
        """Record one measured duration (for timings taken elsewhere)."""
        outcome = "ok" if success else "error"
        self.histogram.labels(self.service_name, operation, outcome).observe(seconds)
        with self._lock:
            samples = self._samples.get(operation)
            if samples is None:
                samples = self._samples[operation] = _Samples(self.window)
            samples.recent.append(seconds)
            samples.count += 1
            samples.total += seconds
            if not success:
                samples.errors += 1

    @contextmanager
    def measure(self, operation: str) -> Iterator[None]:
        """Time the ``with`` block; an exception is recorded as outcome ``error``, re-raised."""
        start = self._clock()
        success = False
        try:
            yield
            success = True
        finally:
            self.record(operation, self._clock() - start, success=success)

    @overload
    def track(self, operation: Callable[P, R]) -> Callable[P, R]: ...

    @overload
    def track(self, operation: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def track(self, operation: Any = None) -> Any:
        """Decorator timing every call of a sync or async function.

        ``@tracker.track`` names the operation after the function's qualified name;
        ``@tracker.track("name")`` names it explicitly.
        """
        if callable(operation):
            return self.track(None)(operation)
        name: str | None = operation

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            """Wrap ``fn`` so every call is measured."""
            label = name or fn.__qualname__
            if inspect.iscoroutinefunction(fn):
                async_fn = cast(Callable[P, Awaitable[Any]], fn)

                @functools.wraps(fn)
                async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                    """Await ``fn`` inside :meth:`measure`."""
                    with self.measure(label):
                        return await async_fn(*args, **kwargs)

                return cast(Callable[P, R], async_wrapper)

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                """Call ``fn`` inside :meth:`measure`."""
                with self.measure(label):
                    return fn(*args, **kwargs)

            return wrapper

        return decorate

    def operations(self) -> list[str]:
        """Names of every operation measured so far."""
        with self._lock:
            return sorted(self._samples)

    def percentiles(
        self, operation: str, quantiles: Iterable[float] = (50, 95, 99)
    ) -> dict[float, float]:
        """Percentiles (0..100) of the recent durations of ``operation``, in seconds."""
        with self._lock:
            samples = self._samples.get(operation)
            values = sorted(samples.recent) if samples else []
        return {q: percentile(values, q) for q in quantiles}

    def stats(self, operation: str) -> OperationStats:
        """Totals and recent percentiles of ``operation``."""
        with self._lock:
            samples = self._samples.get(operation)
            values = sorted(samples.recent) if samples else []
            count = samples.count if samples else 0
            errors = samples.errors if samples else 0
            total = samples.total if samples else 0.0
        return OperationStats(
            operation=operation,
            count=count,
            errors=errors,
            total_seconds=total,
            window=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            max=values[-1] if values else math.nan,
        )

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-ready stats of every operation, e.g. for a service's ``/metrics/summary``."""
        return {op: self.stats(op).to_dict() for op in self.operations()}
