"""ISO 8601 UTC timestamps in the one form the hub and its library write (``...Z``).

Standard library only, so the backends (``adapters``) and the client library may both use
it without pulling in the server.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

TimeSpec = Literal["auto", "seconds", "milliseconds", "microseconds"]


def iso_utc(epoch: float | None = None, timespec: TimeSpec = "milliseconds") -> str:
    """``epoch`` (seconds since 1970; now when ``None``) as ISO 8601 UTC ending in ``Z``.

    ``timespec`` is :meth:`datetime.isoformat`'s: the API's records use milliseconds;
    quotas write whole seconds; ``auto`` keeps microseconds when there are any.
    """
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_now() -> str:
    """The current time in the API's form (ISO 8601 UTC, milliseconds, ``Z``)."""
    return iso_utc()


def parse_iso_utc(value: Any) -> float | None:
    """The epoch of an ISO 8601 timestamp, or ``None`` when absent or unreadable.

    A timestamp without a zone is read as UTC, as the hub never writes local times.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
