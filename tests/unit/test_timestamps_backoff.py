"""The one ISO-time form and the one jittered backoff of the hub and its library."""

from __future__ import annotations

import random

import pytest

from shared.backoff import Backoff, jittered_delay
from shared.timestamps import iso_utc, parse_iso_utc


def test_iso_utc_forms_and_round_trip() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1.5, "seconds") == "1970-01-01T00:00:01Z"
    assert iso_utc(1.25, "auto") == "1970-01-01T00:00:01.250000Z"
    assert parse_iso_utc(iso_utc(1234.5)) == 1234.5
    assert parse_iso_utc("1970-01-01T00:00:10") == 10.0  # no zone: UTC
    assert parse_iso_utc("yesterday") is None
    assert parse_iso_utc(None) is None


def test_jittered_delay_stays_in_the_upper_half_of_the_capped_step() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        step = min(8.0, 0.5 * 2**attempt)
        for _ in range(50):
            assert step / 2 <= jittered_delay(attempt, 0.5, 8.0, rng) <= step
    with pytest.raises(ValueError, match="attempt"):
        jittered_delay(-1, 0.5, 8.0)


def test_backoff_grows_to_the_cap_spreads_out_and_resets() -> None:
    backoff = Backoff(0.1, 1.0, random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    assert delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[5:])
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jittered, not lock-step
    backoff.reset()
    assert backoff.next() <= 0.1
    with pytest.raises(ValueError, match="base"):
        Backoff(0, 1)
