"""Exponential backoff with jitter, for every retry loop of the hub and its library.

Retrying replicas or services that all lost the same backend at the same moment must
not come back in lock-step, so each delay is drawn from the upper half of the
exponential step ("equal jitter"): never less than half the step, never more than it.
Standard library only.
"""

from __future__ import annotations

import random


def jittered_delay(
    attempt: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (0-based).

    The step is ``base * 2**attempt`` bounded by ``cap``; the delay is uniform in
    ``[step / 2, step]``.
    """
    if attempt < 0:
        raise ValueError("attempt must be at least 0")
    step = min(cap, base * (2 ** min(attempt, 64)))
    return step / 2 + (rng or random).uniform(0, step / 2)


class Backoff:
    """The delays of one retry loop: call :meth:`next` after a failure, :meth:`reset`
    after a success."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng

    def next(self) -> float:
        """The delay before the next try; each call doubles the step up to the cap."""
        delay = jittered_delay(self.attempt, self.base, self.cap, self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from the base delay (the operation succeeded)."""
        self.attempt = 0
