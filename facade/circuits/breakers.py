"""Tenant-aware circuit breakers: one per service and subscription tier (DESIGN.md section 6).

What pybreaker gives and what is ours (pybreaker 1.x, measured): pybreaker trips only on a
count of *consecutive* failures, holds a ``threading.RLock`` for the whole guarded call,
and cannot guard an ``async def`` (it is never awaited). So:

* **The state machine is pybreaker's**: CLOSED -> OPEN -> (``reset_timeout``) HALF_OPEN ->
  CLOSED after ``success_threshold`` trial successes, or back to OPEN on a trial failure.
  Its state lives in :class:`BackendCircuitStorage`, our ``CircuitBreakerStorage``
  subclass, whose persistent fields (state, opened_at) are written to the backend key
  ``circuits/<service>/<tier>`` with compare-and-set and read back through the view, so
  every replica answers the same state.
* **The failure-rate window is ours**: :class:`FailureRateWindow` is a time-based
  sliding window (Resilience4j's ``TIME_BASED``) of 1-second buckets with a minimum
  number of calls. pybreaker's consecutive counter is disabled (``fail_max`` is
  ``sys.maxsize``); when the window's failure rate is *greater* than the tier's threshold
  (the seed's ``failure_rate > threshold``) we call ``breaker.open()``.
* **The async path is ours**: nothing awaited ever runs inside pybreaker. An outcome is
  replayed through ``breaker.call`` as a tiny synchronous function that returns or raises,
  so pybreaker's lock is held for microseconds and never across an ``await``; persisting a
  state change to the backend happens afterwards, outside pybreaker.

The windows are per replica (each replica counts the outcomes reported to it and the
probes it ran); the state is shared. With several replicas each sees a share of the
reports, which estimates the same failure rate but reaches ``minimum_calls`` later.
HALF_OPEN cannot limit how many callers try the service (the hub does not proxy calls);
discovery offers the endpoints flagged ``HALF_OPEN`` and the first reported outcomes
decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pybreaker

from adapters import Backend, EventType, KeyValue, WatchEvent
from facade.state.view import StateView
from facade.tenancy.tiers import CIRCUIT_THRESHOLDS
from shared.errors import BackendUnavailable, HubError, RevisionConflict
from shared.tenancy import TIERS
from shared.timestamps import iso_utc, parse_iso_utc

log = logging.getLogger("central_hub.circuits")

CIRCUITS_PREFIX = "circuits/"

STATE_NAMES = {
    pybreaker.STATE_CLOSED: "CLOSED",
    pybreaker.STATE_OPEN: "OPEN",
    pybreaker.STATE_HALF_OPEN: "HALF_OPEN",
}
_STATES_BY_NAME = {name: state for state, name in STATE_NAMES.items()}


def circuit_key(service: str, tier: str) -> str:
    """The backend key of one circuit's shared state."""
    return f"{CIRCUITS_PREFIX}{service}/{tier}"


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """One tier's thresholds: trip above ``failure_rate``, stay open ``open_seconds``."""

    failure_rate: float
    open_seconds: float


SPEC_POLICIES: dict[str, CircuitPolicy] = {
    tier: CircuitPolicy(failure_rate=t.failure_rate, open_seconds=t.open_seconds)
    for tier, t in CIRCUIT_THRESHOLDS.items()
}
"""The seed's ``TenantCircuitBreaker`` thresholds (the tier tables' ``circuit_breakers``)."""


class FailureRateWindow:
    """Outcomes of the last ``window_seconds`` in 1-second buckets.

    Pure: every method takes ``now`` (epoch seconds), so tests drive time directly.
    """

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = max(1, int(window_seconds))
        # [second, calls, failures, latency sum, latency count]
        self._buckets: deque[list[float]] = deque()

    def record(self, success: bool, latency_ms: float | None, now: float) -> None:
        """Count one outcome at ``now``."""
        second = int(now)
        self._expire(second)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0, 0.0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        if not success:
            bucket[2] += 1
        if latency_ms is not None:
            bucket[3] += latency_ms
            bucket[4] += 1

    def _expire(self, second: int) -> None:
        oldest = second - self.window_seconds + 1
        while self._buckets and self._buckets[0][0] < oldest:
            self._buckets.popleft()

    def totals(self, now: float) -> tuple[int, int, float | None]:
        """(calls, failures, mean latency in ms) within the window at ``now``."""
        self._expire(int(now))
        calls = failures = latency_count = 0
        latency_sum = 0.0
        for bucket in self._buckets:
            calls += int(bucket[1])
            failures += int(bucket[2])
            latency_sum += bucket[3]
            latency_count += int(bucket[4])
        return calls, failures, (latency_sum / latency_count if latency_count else None)

    def exceeds(self, threshold: float, minimum_calls: int, now: float) -> bool:
        """Whether at least ``minimum_calls`` were seen and the failure rate is above."""
        calls, failures, _ = self.totals(now)
        return calls >= minimum_calls and failures / calls > threshold

    def reset(self) -> None:
        """Forget every outcome (on closing, like Resilience4j)."""
        self._buckets.clear()


class BackendCircuitStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's storage for one circuit, persisted in the hub backend.

    ``state`` and ``opened_at`` are the shared part: setting them marks the storage
    changed (:attr:`change_count`) and :class:`CircuitBreakers` writes them to the
    backend with compare-and-set on :attr:`revision`. Records other replicas wrote
    arrive through the view and are loaded with :meth:`load`. The failure and success
    counters are per replica and never written: the failure-rate window decides trips,
    and the trial successes of HALF_OPEN are counted where they are reported.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._state: str = pybreaker.STATE_CLOSED
        self._opened_at: datetime | None = None
        self._fail_counter = 0
        self._success_counter = 0
        self.revision = 0
        """``mod_revision`` of the backend record this state was loaded from or written as."""
        self.change_count = 0
        """Bumped by every local state change; persisted when it differs from the stored."""
        self.persisted_count = 0
        self.details: dict[str, Any] = {}
        """Why the state is what it is (failure rate, calls), persisted with it."""

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.change_count += 1

    def increment_counter(self) -> None:
        self._fail_counter += 1

    def reset_counter(self) -> None:
        self._fail_counter = 0

    def increment_success_counter(self) -> None:
        self._success_counter += 1

    def reset_success_counter(self) -> None:
        self._success_counter = 0

    @property
    def counter(self) -> int:
        return self._fail_counter

    @property
    def success_counter(self) -> int:
        return self._success_counter

    @property
    def opened_at(self) -> datetime | None:
        return self._opened_at

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self._opened_at = value
        self.change_count += 1

    @property
    def dirty(self) -> bool:
        """Whether there is a local change the backend has not accepted yet."""
        return self.change_count != self.persisted_count

    def to_record(self, open_seconds: float) -> dict[str, Any]:
        """The stored JSON form."""
        opened = self._opened_at.timestamp() if self._opened_at else None
        return {
            "state": STATE_NAMES[self._state],
            "opened_at": iso_utc(opened) if opened is not None else None,
            "retry_at": (
                iso_utc(opened + open_seconds)
                if opened is not None and self._state == pybreaker.STATE_OPEN
                else None
            ),
            "updated_at": iso_utc(time.time()),
            **self.details,
        }

    def load(self, record: dict[str, Any], revision: int) -> None:
        """Adopt a record from the backend (another replica's decision, or a resync)."""
        state = _STATES_BY_NAME.get(str(record.get("state")), pybreaker.STATE_CLOSED)
        opened = parse_iso_utc(record.get("opened_at"))
        self._state = state
        self._opened_at = datetime.fromtimestamp(opened, UTC) if opened is not None else None
        self.details = {k: v for k, v in record.items() if k in _DETAIL_KEYS}
        self.revision = revision
        self.persisted_count = self.change_count

    def forget(self) -> None:
        """The backend record was deleted: back to CLOSED."""
        self._state = pybreaker.STATE_CLOSED
        self._opened_at = None
        self.details = {}
        self.revision = 0
        self.persisted_count = self.change_count


_DETAIL_KEYS = frozenset({"reason", "failure_rate", "calls", "threshold"})


class _ReportedFailure(Exception):
    """Raised inside pybreaker to replay a failed outcome."""


def _replay(success: bool) -> None:
    if not success:
        raise _ReportedFailure


class _ResetWindowOnClose(pybreaker.CircuitBreakerListener):
    def __init__(self, window: FailureRateWindow) -> None:
        self.window = window

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if new_state.name == pybreaker.STATE_CLOSED:
            self.window.reset()


class TierCircuit:
    """The breaker of one service for one tier."""

    def __init__(
        self,
        service: str,
        tier: str,
        policy: CircuitPolicy,
        *,
        window_seconds: float,
        minimum_calls: int,
        half_open_successes: int,
    ) -> None:
        self.service = service
        self.tier = tier
        self.policy = policy
        self.minimum_calls = minimum_calls
        self.window = FailureRateWindow(window_seconds)
        self.storage = BackendCircuitStorage(f"{service}/{tier}")
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=sys.maxsize,  # trips come from the failure-rate window, not a count
            reset_timeout=policy.open_seconds,
            success_threshold=half_open_successes,
            state_storage=self.storage,
            listeners=[_ResetWindowOnClose(self.window)],
            name=f"{service}/{tier}",
        )
        self.lock = asyncio.Lock()
        """Serialises this circuit's backend writes on this replica."""

    def record(self, success: bool, latency_ms: float | None, now: float) -> None:
        """Count one outcome and let the state machine react (synchronous, no I/O)."""
        changes_before = self.storage.change_count
        self.window.record(success, latency_ms, now)
        # A failed outcome raises by design; OPEN before its timeout rejects the replay.
        with contextlib.suppress(_ReportedFailure, pybreaker.CircuitBreakerError):
            self.breaker.call(_replay, success)
        if self.storage.state == pybreaker.STATE_CLOSED and self.window.exceeds(
            self.policy.failure_rate, self.minimum_calls, now
        ):
            calls, failures, _ = self.window.totals(now)
            self.storage.details = {
                "reason": "failure_rate",
                "failure_rate": round(failures / calls, 4),
                "calls": calls,
                "threshold": self.policy.failure_rate,
            }
            self.breaker.open()
        elif self.storage.change_count != changes_before:
            opened = self.storage.state == pybreaker.STATE_OPEN
            self.storage.details = {"reason": "trial_failed"} if opened else {}

    def retry_at(self) -> float | None:
        """When an OPEN circuit lets trial calls through (epoch), else ``None``."""
        opened = self.storage.opened_at
        if self.storage.state != pybreaker.STATE_OPEN or opened is None:
            return None
        return opened.timestamp() + self.policy.open_seconds

    def state_name(self, now: float) -> str:
        """CLOSED, OPEN or HALF_OPEN as callers should act on it at ``now``.

        An OPEN circuit whose timeout has run out answers HALF_OPEN even before the next
        outcome moves pybreaker's state there: trial calls are allowed from that moment.
        """
        retry_at = self.retry_at()
        if retry_at is not None and now >= retry_at:
            return "HALF_OPEN"
        return STATE_NAMES[self.storage.state]

    def describe(self, now: float) -> dict[str, Any]:
        """The circuit as ``GET /circuits/{service}`` shows it."""
        calls, failures, latency = self.window.totals(now)
        retry_at = self.retry_at()
        opened = self.storage.opened_at
        return {
            "state": self.state_name(now),
            "failure_rate_threshold": self.policy.failure_rate,
            "open_seconds": self.policy.open_seconds,
            "window": {
                "calls": calls,
                "failures": failures,
                "failure_rate": round(failures / calls, 4) if calls else None,
                "mean_latency_ms": round(latency, 1) if latency is not None else None,
                "minimum_calls": self.minimum_calls,
                "seconds": self.window.window_seconds,
            },
            "opened_at": iso_utc(opened.timestamp()) if opened is not None else None,
            "retry_at": iso_utc(retry_at) if retry_at is not None else None,
            "trip": dict(self.storage.details) or None,
        }


@dataclass(frozen=True, slots=True)
class CircuitVerdict:
    """What discovery needs to know about one service for one tier."""

    state: str
    retry_at: float | None = None

    @property
    def is_open(self) -> bool:
        """Whether the tier's recommendation must leave the service out."""
        return self.state == "OPEN"

    def public(self, now: float) -> dict[str, Any]:
        """The ``circuit`` part of discovery answers."""
        if self.retry_at is None:
            return {"state": self.state, "retry_at": None, "retry_after": None}
        return {
            "state": self.state,
            "retry_at": iso_utc(self.retry_at),
            "retry_after": round(max(0.0, self.retry_at - now), 3),
        }


CLOSED = CircuitVerdict("CLOSED")


class CircuitBreakers:
    """Every circuit this replica knows, its reports, and the shared state in the backend."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        *,
        policies: dict[str, CircuitPolicy] | None = None,
        window_seconds: float = 60.0,
        minimum_calls: int = 10,
        half_open_successes: int = 3,
        visibility_timeout: float = 5.0,
    ) -> None:
        self.backend = backend
        self.view = view
        self.policies = dict(policies or SPEC_POLICIES)
        self.window_seconds = window_seconds
        self.minimum_calls = minimum_calls
        self.half_open_successes = half_open_successes
        self.visibility_timeout = visibility_timeout
        self._circuits: dict[str, dict[str, TierCircuit]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()

    # -- reading (hot path) ---------------------------------------------------------

    def verdict(self, service: str, tier: str, now: float | None = None) -> CircuitVerdict:
        """The tier's circuit for ``service``: two dict lookups and a clock comparison."""
        circuit = self._circuits.get(service, {}).get(tier)
        if circuit is None:
            return CLOSED
        now = time.time() if now is None else now
        state = circuit.state_name(now)
        if state == "CLOSED":
            return CLOSED
        return CircuitVerdict(state, circuit.retry_at() if state == "OPEN" else None)

    def states(self, now: float | None = None) -> list[tuple[str, str, str]]:
        """(service, tier, state) of every circuit this replica knows."""
        now = time.time() if now is None else now
        return [
            (service, tier, circuit.state_name(now))
            for service, tiers in self._circuits.items()
            for tier, circuit in tiers.items()
        ]

    def describe(self, service: str, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Every tier's circuit of ``service``."""
        now = time.time() if now is None else now
        return {tier: self._circuit(service, tier).describe(now) for tier in TIERS}

    # -- feeding --------------------------------------------------------------------

    def _circuit(self, service: str, tier: str) -> TierCircuit:
        tiers = self._circuits.setdefault(service, {})
        circuit = tiers.get(tier)
        if circuit is None:
            circuit = tiers[tier] = TierCircuit(
                service,
                tier,
                self.policies[tier],
                window_seconds=self.window_seconds,
                minimum_calls=self.minimum_calls,
                half_open_successes=self.half_open_successes,
            )
        return circuit

    async def record(
        self,
        service: str,
        success: bool,
        latency_ms: float | None = None,
        *,
        tier: str | None = None,
        now: float | None = None,
    ) -> int | None:
        """Count one outcome for one tier (or every tier) and persist any state change.

        Returns the backend revision of the last write (``None`` when nothing changed),
        after this replica's view has reached it. Raises BackendUnavailable when a state
        change could not be written; it stays pending and the next outcome retries it.
        """
        now = time.time() if now is None else now
        revision: int | None = None
        for name in (tier,) if tier else TIERS:
            circuit = self._circuit(service, name)
            circuit.record(success, latency_ms, now)
            if circuit.storage.dirty:
                revision = await self._persist(circuit) or revision
        if revision is not None and not await self.view.wait_for(revision, self.visibility_timeout):
            log.warning("circuit write at revision %d not yet visible here", revision)
        return revision

    async def _persist(self, circuit: TierCircuit) -> int | None:
        """Write a changed state with compare-and-set; on conflict adopt the stored one."""
        async with circuit.lock:
            storage = circuit.storage
            if not storage.dirty:
                return None
            pending = storage.change_count
            key = circuit_key(circuit.service, circuit.tier)
            record = storage.to_record(circuit.policy.open_seconds)
            try:
                revision = await self.backend.put(
                    key, orjson.dumps(record), if_revision=storage.revision
                )
            except RevisionConflict:
                # Another replica moved this circuit first; its decision stands.
                current = await self.backend.get(key)
                self._load(circuit, current)
                log.info("circuit %s/%s changed elsewhere; adopted", circuit.service, circuit.tier)
                return current.mod_revision if current else None
            except BackendUnavailable:
                log.warning("circuit %s/%s change not persisted yet", circuit.service, circuit.tier)
                raise
            storage.revision = revision
            storage.persisted_count = pending
            log.info(
                "circuit %s/%s is %s", circuit.service, circuit.tier, STATE_NAMES[storage.state]
            )
            return revision

    @staticmethod
    def _load(circuit: TierCircuit, kv: KeyValue | None) -> None:
        if kv is None:
            circuit.storage.forget()
            return
        try:
            record = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            log.warning("ignoring unreadable circuit record %s", kv.key)
            return
        if isinstance(record, dict):
            circuit.storage.load(record, kv.mod_revision)

    # -- view listener (records written by any replica) -----------------------------

    def _split(self, key: str) -> tuple[str, str] | None:
        service, _, tier = key[len(CIRCUITS_PREFIX) :].partition("/")
        if not service or tier not in self.policies:
            return None
        return service, tier

    def reset(self, items: dict[str, KeyValue]) -> None:
        """Resync from a snapshot of ``circuits/``."""
        seen: set[tuple[str, str]] = set()
        for key, kv in items.items():
            parts = self._split(key)
            if parts is not None:
                seen.add(parts)
                self._load(self._circuit(*parts), kv)
        for service, tiers in self._circuits.items():
            for tier, circuit in tiers.items():
                if (service, tier) not in seen and circuit.storage.revision:
                    circuit.storage.forget()

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """Apply one change; our own writes come back too and are recognised by revision."""
        parts = self._split(event.key)
        if parts is None:
            return
        if event.type is EventType.DELETE:
            # Never create a circuit just to close it (a departed service's records go).
            known = self._circuits.get(parts[0], {}).get(parts[1])
            if known is not None:
                known.storage.forget()
            return
        circuit = self._circuit(*parts)
        if event.revision > circuit.storage.revision:
            self._load(
                circuit,
                KeyValue(event.key, event.value or b"", event.revision, event.revision),
            )

    def forget_service(self, service: str) -> None:
        """Forget a service that left the catalog: its circuits here and, in the
        background, its stored circuit records (compare-and-set, so of several replicas
        doing the same one deletes and the others find nothing to do)."""
        self._circuits.pop(service, None)
        stored = [kv for tier in self.policies if (kv := self.view.get(circuit_key(service, tier)))]
        if not stored:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._delete_records(stored))
        except RuntimeError:  # no event loop (a synchronous caller): nothing to delete with
            return
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _delete_records(self, stored: list[KeyValue]) -> None:
        for kv in stored:
            try:
                await self.backend.delete(kv.key, if_revision=kv.mod_revision)
            except RevisionConflict:
                pass  # written again meanwhile (the service is back) or already deleted
            except HubError as exc:
                log.warning("circuit record %s of a departed service kept: %s", kv.key, exc)
