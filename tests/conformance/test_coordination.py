"""Leader election and shared circuit state on every backend kind.

Two elections (or two views) on one backend stand for two hub replicas sharing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from adapters import Backend
from facade.circuits.breakers import CIRCUITS_PREFIX, CircuitBreakers, CircuitPolicy
from facade.state.leader_election import LEADER_PREFIX, LeaderElection
from facade.state.view import StateView


async def until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def replica_view(backend: Backend) -> AsyncIterator[StateView]:
    view = StateView(backend)
    yield view
    await view.stop()


async def test_exactly_one_leader_and_takeover_on_release(backend: Backend) -> None:
    events: list[str] = []

    def election(name: str) -> LeaderElection:
        async def elected() -> None:
            events.append(f"{name}+")

        async def demoted() -> None:
            events.append(f"{name}-")

        return LeaderElection(
            backend, "test", ttl=2, identity=name, on_elected=elected, on_demoted=demoted
        )

    first, second = election("a"), election("b")
    await first.start()
    await until(lambda: first.is_leader)
    await second.start()
    await asyncio.sleep(0.5)  # give the follower a few look-ups: it must not win
    assert not second.is_leader
    kv = await backend.get(f"{LEADER_PREFIX}test")
    assert kv is not None
    assert kv.lease is not None
    await first.stop()
    await until(lambda: second.is_leader)
    assert events == ["a+", "a-", "b+"]
    await second.stop()
    assert await backend.get(f"{LEADER_PREFIX}test") is None


async def test_takeover_after_the_leader_dies_without_releasing(backend: Backend) -> None:
    first = LeaderElection(backend, "crash", ttl=1, identity="a")
    second = LeaderElection(backend, "crash", ttl=1, identity="b")
    await first.start()
    await until(lambda: first.is_leader)
    await second.start()
    # A crash: the campaign stops renewing and never revokes its lease.
    assert first._task is not None
    first._task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first._task
    first._task = None
    await until(lambda: second.is_leader)
    kv = await backend.get(f"{LEADER_PREFIX}crash")
    assert kv is not None
    assert b'"b"' in kv.value
    await second.stop()


async def test_circuit_state_reaches_another_replica(backend: Backend) -> None:
    tier = "enterprise"
    policies = {
        "free": CircuitPolicy(0.5, 60),
        "pro": CircuitPolicy(0.3, 30),
        "enterprise": CircuitPolicy(0.1, 30),
    }
    async with replica_view(backend) as view_a, replica_view(backend) as view_b:
        replica_a = CircuitBreakers(backend, view_a, policies=policies, minimum_calls=5)
        replica_b = CircuitBreakers(backend, view_b, policies=policies, minimum_calls=5)
        view_a.add_listener(CIRCUITS_PREFIX, replica_a)
        view_b.add_listener(CIRCUITS_PREFIX, replica_b)
        await view_a.start(backend_open=True, timeout=10)
        await view_b.start(backend_open=True, timeout=10)
        revision = None
        for _ in range(5):
            revision = await replica_a.record("svc", False, tier=tier) or revision
        assert revision is not None
        assert replica_a.verdict("svc", tier).state == "OPEN"
        assert await view_b.wait_for(revision, 10)
        verdict = replica_b.verdict("svc", tier)
        assert verdict.state == "OPEN"
        assert verdict.retry_at is not None
        assert replica_b.verdict("svc", "free").state == "CLOSED"


async def test_a_replica_that_missed_a_trip_adopts_the_stored_state(backend: Backend) -> None:
    async with replica_view(backend) as view_a, replica_view(backend) as view_b:
        replica_a = CircuitBreakers(backend, view_a, minimum_calls=5)
        # B's view never runs here, so B must not wait long for it to catch up.
        replica_b = CircuitBreakers(backend, view_b, minimum_calls=5, visibility_timeout=0.05)
        view_a.add_listener(CIRCUITS_PREFIX, replica_a)
        view_b.add_listener(CIRCUITS_PREFIX, replica_b)
        await view_a.start(backend_open=True, timeout=10)
        for _ in range(5):
            await replica_a.record("svc", False, tier="pro")
        stored = await backend.get(f"{CIRCUITS_PREFIX}svc/pro")
        assert stored is not None
        # Replica B never saw that write (its view is not running) and trips on its own:
        # its compare-and-set fails, and it adopts the stored decision instead.
        for _ in range(5):
            await replica_b.record("svc", False, tier="pro")
        assert replica_b.verdict("svc", "pro").state == "OPEN"
        after = await backend.get(f"{CIRCUITS_PREFIX}svc/pro")
        assert after is not None
        assert after.mod_revision == stored.mod_revision
        retry_b = replica_b.verdict("svc", "pro").retry_at
        assert retry_b == pytest.approx(replica_a.verdict("svc", "pro").retry_at, abs=0.01)
