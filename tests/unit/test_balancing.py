"""Endpoint selection strategies and the confidence formula.

Distribution tests draw 20,000 picks; the tolerance of 3 percentage points is about seven
standard deviations of a binomial share near 25 %, so they cannot flake in practice, and
a seeded generator makes each run reproducible anyway.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from facade.discovery.balancing import EndpointSelector, SmoothWeightedRoundRobin
from facade.state.catalog import Candidate, CandidateSet, Instance
from facade.state.confidence import confidence_score

PICKS = 20_000
TOLERANCE = 0.03


def candidate(
    iid: str, weight: int = 1, latency: float | None = None, load: float | None = None
) -> Candidate:
    inst = Instance(
        instance_id=iid, service_name="svc", host="127.0.0.1", port=8000, weight=weight, load=load
    )
    return Candidate(inst, "healthy", 1.0, latency_ms=latency, load=load)


def shares(selector: EndpointSelector, cset: CandidateSet, strategy: str) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for _ in range(PICKS):
        chosen = selector.pick("svc", cset, strategy)
        assert chosen is not None
        counts[chosen.instance.instance_id] += 1
    return {iid: n / PICKS for iid, n in counts.items()}


@pytest.mark.parametrize("strategy", ["random", "p2c", "round_robin"])
def test_weights_one_to_three_give_a_quarter_and_three_quarters(strategy: str) -> None:
    cset = CandidateSet([candidate("a", 1), candidate("b", 3)], False)
    got = shares(EndpointSelector(random.Random(7)), cset, strategy)
    assert got["a"] == pytest.approx(0.25, abs=TOLERANCE)
    assert got["b"] == pytest.approx(0.75, abs=TOLERANCE)


def test_weights_reach_p2c_among_many_alike_instances() -> None:
    cset = CandidateSet(
        [candidate(f"i{n}", weight, latency=20.0) for n, weight in enumerate([1, 1, 2, 4])], False
    )
    got = shares(EndpointSelector(random.Random(11)), cset, "p2c")
    for iid, expected in {"i0": 0.125, "i1": 0.125, "i2": 0.25, "i3": 0.5}.items():
        assert got[iid] == pytest.approx(expected, abs=TOLERANCE)


def test_smooth_round_robin_is_exact_and_interleaved() -> None:
    cset = CandidateSet([candidate("a", 1), candidate("b", 3)], False)
    rr = SmoothWeightedRoundRobin()
    picks = [rr.pick("svc", cset) for _ in range(400)]
    ids = [p.instance.instance_id for p in picks if p is not None]
    assert Counter(ids) == {"a": 100, "b": 300}
    assert "aa" not in "".join(ids)  # never two of the light one in a row


def test_p2c_avoids_a_clearly_slower_instance() -> None:
    cset = CandidateSet([candidate("fast", latency=10.0), candidate("slow", latency=80.0)], False)
    got = shares(EndpointSelector(random.Random(3)), cset, "p2c")
    assert got == {"fast": 1.0}


def test_p2c_treats_close_latencies_as_equal() -> None:
    cset = CandidateSet([candidate("a", latency=10.0), candidate("b", latency=11.0)], False)
    got = shares(EndpointSelector(random.Random(5)), cset, "p2c")
    assert got["a"] == pytest.approx(0.5, abs=TOLERANCE)


def test_p2c_scales_latency_by_reported_load() -> None:
    cset = CandidateSet(
        [candidate("busy", latency=10.0, load=1.0), candidate("idle", latency=10.0, load=0.0)],
        False,
    )
    assert shares(EndpointSelector(random.Random(9)), cset, "p2c") == {"idle": 1.0}


def test_p2c_draws_two_distinct_instances() -> None:
    # With three alike instances a same-instance second draw would skew nothing, so use
    # one fast and two slow: the fast one wins every comparison it is part of, and with
    # distinct draws it is in 2/3 of them (weighted equally).
    cset = CandidateSet(
        [
            candidate("fast", latency=5.0),
            candidate("s1", latency=50.0),
            candidate("s2", latency=50.0),
        ],
        False,
    )
    got = shares(EndpointSelector(random.Random(13)), cset, "p2c")
    assert got["fast"] == pytest.approx(2 / 3, abs=TOLERANCE)


def test_least_load_prefers_the_lowest_and_splits_ties_by_weight() -> None:
    cset = CandidateSet(
        [candidate("a", 1, load=0.1), candidate("b", 3, load=0.1), candidate("c", 9, load=0.7)],
        False,
    )
    got = shares(EndpointSelector(random.Random(17)), cset, "least_load")
    assert "c" not in got
    assert got["a"] == pytest.approx(0.25, abs=TOLERANCE)


def test_least_load_treats_unreported_load_as_middling() -> None:
    cset = CandidateSet([candidate("unknown"), candidate("busy", load=0.9)], False)
    assert shares(EndpointSelector(random.Random(1)), cset, "least_load") == {"unknown": 1.0}


def test_no_candidates_and_unknown_strategy() -> None:
    selector = EndpointSelector()
    assert selector.pick("svc", CandidateSet([], False), "p2c") is None
    two = CandidateSet([candidate("a"), candidate("b")], False)
    with pytest.raises(ValueError, match="unknown strategy"):
        selector.pick("svc", two, "fastest")


def test_confidence_formula() -> None:
    unchecked = confidence_score(
        success_rate=None, latency_ms=None, latency_trend=None, degraded_latency_ms=500
    )
    assert unchecked == 1.0
    at_threshold = confidence_score(
        success_rate=1.0, latency_ms=500, latency_trend=1.0, degraded_latency_ms=500
    )
    assert at_threshold == 0.5
    flaky_fast = confidence_score(
        success_rate=0.8, latency_ms=0, latency_trend=None, degraded_latency_ms=500
    )
    assert flaky_fast == 0.8
    rising = confidence_score(
        success_rate=1.0, latency_ms=0, latency_trend=2.5, degraded_latency_ms=500
    )
    assert rising == 0.5
    steady_noise = confidence_score(
        success_rate=1.0, latency_ms=0, latency_trend=1.2, degraded_latency_ms=500
    )
    assert steady_noise == 1.0
