"""HTTP conditions of the versioned APIs: ``ETag``, ``If-Match`` and the blocking ``wait``."""

from __future__ import annotations

import re
from typing import Literal

from shared.errors import InvalidRequest

MAX_VERSION = 2**53 - 1
"""Largest version (revision) accepted in requests; larger ones cannot exist."""
_WAIT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0


def parse_if_match(header: str | None) -> set[int] | Literal["*"] | None:
    """The versions an ``If-Match`` header accepts (``"12"``, ``W/"12"``, ``12``, ``*``)."""
    if header is None:
        return None
    header = header.strip()
    if header == "*":
        return "*"
    versions: set[int] = set()
    for part in header.split(","):
        tag = part.strip().removeprefix("W/").strip('"')
        if not tag.isdigit() or len(tag) > 16 or int(tag) > MAX_VERSION:
            raise InvalidRequest(
                'If-Match must carry versions as ETags, e.g. "42"',
                details={"header": "If-Match", "value": header[:200]},
            )
        versions.add(int(tag))
    return versions


def etag(version: int) -> str:
    """The ETag of a version."""
    return f'"{version}"'


def parse_wait(value: str | None) -> float:
    """A Consul-style ``wait`` (``30s``, ``500ms``, ``5m``; bare numbers are seconds).

    Defaults to 5 minutes and is capped at 10, as Consul's blocking queries are.
    """
    if value is None or value == "":
        return DEFAULT_WAIT
    match = _WAIT.match(value.strip())
    if match is None:
        raise InvalidRequest(
            "wait must be a duration like 30s, 500ms or 5m",
            details={"parameter": "wait", "value": value[:50]},
        )
    number = float(match.group(1))
    seconds = {"ms": number / 1000, "m": number * 60}.get(match.group(2) or "s", number)
    return min(seconds, MAX_WAIT)
