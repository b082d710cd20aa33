"""The catalog index and selection, without HTTP or a backend."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson

from adapters import EventType, WatchEvent
from adapters.sqlite import SQLiteBackend
from facade.circuits.breakers import CircuitBreakers
from facade.discovery.balancing import STRATEGIES, EndpointSelector, SmoothWeightedRoundRobin
from facade.discovery.lookup import DiscoveryService
from facade.state.catalog import CatalogIndex, Instance, endpoint_url
from facade.state.view import StateView
from facade.tenancy.tenant_directory import TenantDirectory
from shared.tenancy import TenantContext


def put(index: CatalogIndex, key: str, value: dict[str, object], rev: int) -> None:
    index.apply(WatchEvent(EventType.PUT, key, rev, orjson.dumps(value)), None)


def record(iid: str, port: int, weight: int = 1) -> dict[str, object]:
    return Instance(iid, "svc", "127.0.0.1", port, weight=weight).to_record()


def test_health_overlay_and_degraded_fallback() -> None:
    index = CatalogIndex()
    put(index, "catalog/svc/a", record("a", 1), 1)
    put(index, "catalog/svc/b", record("b", 2), 2)
    state = index.get("svc")
    assert state is not None
    assert [c.instance.instance_id for c in state.candidates().candidates] == ["a", "b"]
    put(index, "health/svc/a", {"status": "critical"}, 3)
    assert [c.instance.instance_id for c in state.candidates().candidates] == ["b"]
    put(index, "health/svc/b", {"status": "degraded"}, 4)
    candidates = state.candidates()
    assert candidates.degraded_fallback is True
    assert [c.instance.instance_id for c in candidates.candidates] == ["b"]
    put(index, "health/svc/b", {"status": "critical"}, 5)
    assert not state.candidates()
    assert state.candidates().degraded_fallback is False


def test_malformed_records_are_ignored_not_fatal() -> None:
    index = CatalogIndex()
    index.apply(WatchEvent(EventType.PUT, "catalog/svc/x", 1, b"not json"), None)
    put(index, "catalog/svc/y", {"no": "fields"}, 2)
    put(index, "catalog/svc/z", record("z", 3), 3)
    state = index.get("svc")
    assert state is not None
    assert list(state.instances) == ["z"]


def test_delete_drops_empty_services() -> None:
    index = CatalogIndex()
    put(index, "catalog/svc/a", record("a", 1), 1)
    index.apply(WatchEvent(EventType.DELETE, "catalog/svc/a", 2), None)
    assert index.get("svc") is None


def test_smooth_weighted_round_robin_interleaves_exactly() -> None:
    index = CatalogIndex()
    put(index, "catalog/svc/a", record("a", 1, weight=5), 1)
    put(index, "catalog/svc/b", record("b", 2, weight=1), 2)
    put(index, "catalog/svc/c", record("c", 3, weight=1), 3)
    state = index.get("svc")
    assert state is not None
    rr = SmoothWeightedRoundRobin()
    seq = [rr.pick("svc", state.candidates()).instance.instance_id for _ in range(7)]  # type: ignore[union-attr]
    assert Counter(seq) == {"a": 5, "b": 1, "c": 1}
    assert seq[:3] != ["a", "a", "a"]  # smooth: no bursts of the heavy instance


def test_ipv6_urls_are_bracketed() -> None:
    assert endpoint_url("http", "::1", 80) == "http://[::1]:80"


def test_only_the_healthy_instance_is_offered_beside_a_degraded_one(tmp_path: Path) -> None:
    index = CatalogIndex()
    put(index, "catalog/svc/a", record("a", 1), 1)
    put(index, "catalog/svc/b", record("b", 2), 2)
    put(index, "health/svc/a", {"status": "healthy"}, 3)
    put(index, "health/svc/b", {"status": "degraded"}, 4)
    state = index.get("svc")
    assert state is not None
    healthy_url = endpoint_url("http", "127.0.0.1", 1)
    candidates = state.candidates()
    assert [c.instance.instance_id for c in candidates.candidates] == ["a"]
    assert candidates.degraded_fallback is False
    selector = EndpointSelector(random.Random(7))
    for strategy in STRATEGIES:
        picks = [selector.pick("svc", candidates, strategy) for _ in range(50)]
        assert {p.instance.instance_id for p in picks if p is not None} == {"a"}, strategy
        assert None not in picks
    # Discovery answers from the same index (no backend call: the view is never started).
    backend = SQLiteBackend(tmp_path)
    view = StateView(backend)
    discovery = DiscoveryService(view, index, CircuitBreakers(backend, view), TenantDirectory())
    for ctx in (TenantContext(), TenantContext(tenant_id="t1", tier="enterprise")):
        for strategy in STRATEGIES:
            answer = discovery.discover("svc", ctx, strategy)
            assert answer["recommended_endpoint"] == healthy_url
            assert answer["all_healthy_endpoints"] == [healthy_url]
            assert [e["instance_id"] for e in answer["endpoints"]] == ["a"]
            assert answer["degraded_fallback"] is False
            chosen = discovery.endpoint("svc", ctx, strategy)
            assert (chosen["instance_id"], chosen["status"]) == ("a", "healthy")
