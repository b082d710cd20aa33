"""Endpoint selection among a service's candidate instances."""

from __future__ import annotations

from collections.abc import Sequence

from facade.catalog import Candidate


class SmoothWeightedRoundRobin:
    """Nginx's smooth weighted round robin, one state per service on this replica.

    Over any window of ``sum(weights)`` picks each instance is chosen exactly ``weight``
    times, interleaved rather than in bursts.
    """

    def __init__(self) -> None:
        self._current: dict[str, dict[str, int]] = {}

    def pick(self, service: str, candidates: Sequence[Candidate]) -> Candidate | None:
        """The next endpoint of ``service`` (None when there are no candidates)."""
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        current = self._current.setdefault(service, {})
        total = 0
        best: Candidate | None = None
        best_weight = 0
        for cand in candidates:
            iid = cand.instance.instance_id
            weight = cand.instance.weight
            value = current.get(iid, 0) + weight
            current[iid] = value
            total += weight
            if best is None or value > best_weight:
                best, best_weight = cand, value
        assert best is not None
        current[best.instance.instance_id] -= total
        if len(current) > 2 * len(candidates):  # forget instances that left
            alive = {c.instance.instance_id for c in candidates}
            for iid in [i for i in current if i not in alive]:
                del current[iid]
        return best
