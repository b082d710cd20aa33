"""Endpoint selection among a service's candidate instances (DESIGN.md section 6).

Four strategies, all honouring instance weights (``docs/selection.md`` has the detail):

* ``round_robin``: nginx's smooth weighted round robin; exact shares, interleaved.
* ``least_load``: the lowest load instances reported with their heartbeats; ties (within
  :data:`LOAD_TIE_TOLERANCE`) are broken by a weighted random pick so a burst of requests
  between two heartbeats does not all land on one instance.
* ``p2c`` (default): power of two choices. Two distinct instances are drawn at random in
  proportion to their weights; the one with the clearly lower cost wins, where
  ``cost = EWMA latency x (1 + load)``. "Clearly" means at least :data:`P2C_MARGIN` times
  lower; otherwise (or when either cost is unknown) the first draw wins, so instances
  that perform alike receive traffic in proportion to their weights and a slow one is
  avoided without the whole service herding onto the single fastest instance.
* ``random``: weighted random.

Selection state (round-robin counters, the random generator) is per hub replica; the
inputs (weights, health, latency, load) come from the shared backend through the view.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import Literal, get_args

from facade.state.catalog import Candidate, CandidateSet

Strategy = Literal["p2c", "round_robin", "least_load", "random"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
DEFAULT_STRATEGY: Strategy = "p2c"

UNKNOWN_LOAD = 0.5
"""Load assumed for an instance that never reported one: neither preferred nor avoided."""
LOAD_TIE_TOLERANCE = 0.02
P2C_MARGIN = 1.25


class SmoothWeightedRoundRobin:
    """Nginx's smooth weighted round robin, one state per service on this replica.

    Over any window of ``sum(weights)`` picks each instance is chosen exactly ``weight``
    times, interleaved rather than in bursts.
    """

    def __init__(self) -> None:
        self._current: dict[str, dict[str, int]] = {}

    def pick(self, service: str, candidates: CandidateSet) -> Candidate | None:
        """The next endpoint of ``service`` (None when there are no candidates)."""
        members = candidates.candidates
        if not members:
            return None
        if len(members) == 1:
            return members[0]
        current = self._current.setdefault(service, {})
        total = 0
        best: Candidate | None = None
        best_weight = 0
        for cand in members:
            iid = cand.instance.instance_id
            weight = cand.weight
            value = current.get(iid, 0) + weight
            current[iid] = value
            total += weight
            if best is None or value > best_weight:
                best, best_weight = cand, value
        assert best is not None
        current[best.instance.instance_id] -= total
        if len(current) > 2 * len(members):  # forget instances that left
            alive = {c.instance.instance_id for c in members}
            for iid in [i for i in current if i not in alive]:
                del current[iid]
        return best

    def forget(self, service: str) -> None:
        """Drop the counters of a service that has left the catalog."""
        self._current.pop(service, None)


def p2c_cost(candidate: Candidate) -> float | None:
    """What power of two choices minimises: EWMA latency scaled up by reported load."""
    if candidate.latency_ms is None:
        return None
    load = UNKNOWN_LOAD if candidate.load is None else candidate.load
    return candidate.latency_ms * (1.0 + load)


class EndpointSelector:
    """Picks one endpoint of a service with a named strategy."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.round_robin = SmoothWeightedRoundRobin()

    def forget(self, service: str) -> None:
        """Drop the selection state of a service that has left the catalog."""
        self.round_robin.forget(service)

    def pick(self, service: str, candidates: CandidateSet, strategy: str) -> Candidate | None:
        """One endpoint, or ``None`` when there is no candidate.

        Raises ValueError for an unknown strategy (routers validate it first).
        """
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates.candidates[0]
        if strategy == "p2c":
            return self._power_of_two(candidates)
        if strategy == "round_robin":
            return self.round_robin.pick(service, candidates)
        if strategy == "least_load":
            return self._weighted(candidates.least_loaded(UNKNOWN_LOAD, LOAD_TIE_TOLERANCE))
        if strategy == "random":
            return self._weighted(candidates)
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")

    def _weighted_index(self, candidates: CandidateSet, exclude: int | None = None) -> int:
        """A random index drawn in proportion to weight, optionally never ``exclude``."""
        cumulative = candidates.cumulative
        if exclude is None:
            return bisect_right(cumulative, self.rng.random() * candidates.total_weight)
        excluded_weight = candidates.candidates[exclude].weight
        excluded_start = cumulative[exclude] - excluded_weight
        point = self.rng.random() * (candidates.total_weight - excluded_weight)
        if point >= excluded_start:  # skip over the excluded instance's stretch
            point += excluded_weight
        return min(bisect_right(cumulative, point), len(cumulative) - 1)

    def _weighted(self, candidates: CandidateSet) -> Candidate:
        if len(candidates) == 1:
            return candidates.candidates[0]
        index = min(self._weighted_index(candidates), len(candidates) - 1)
        return candidates.candidates[index]

    def _power_of_two(self, candidates: CandidateSet) -> Candidate:
        first_index = min(self._weighted_index(candidates), len(candidates) - 1)
        second_index = self._weighted_index(candidates, exclude=first_index)
        first = candidates.candidates[first_index]
        second = candidates.candidates[second_index]
        first_cost, second_cost = p2c_cost(first), p2c_cost(second)
        if (
            first_cost is not None
            and second_cost is not None
            and second_cost * P2C_MARGIN < first_cost
        ):
            return second
        return first
