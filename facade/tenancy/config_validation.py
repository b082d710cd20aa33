"""What a config layer may hold: validation, and the spec's per-tier keys of a global write."""

from __future__ import annotations

import math
import re
from typing import Any

from shared.errors import InvalidRequest
from shared.tenancy import TIERS

LIMIT_SECTIONS = ("rate_limits", "resource_limits")
"""Sections whose values must be non-negative integers."""
FLAG_SECTIONS = ("features",)
"""Sections whose values must be booleans."""
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MAX_LIMIT = 2**53 - 1
"""Largest limit accepted (still exact as a JSON number in every client)."""

PER_TIER_KEY = re.compile(r"^([A-Za-z0-9]+)_tier$")
"""The spec's per-tier key in a global write: ``free_tier``, ``pro_tier``, ..."""
PER_TIER_SCALAR_KEY = {"rate_limits": "api_calls_per_hour"}
"""What a bare number under ``<section>.<tier>_tier`` sets in that tier's layer: the
spec's ``rate_limits`` carry ``api_calls_per_hour`` (the limit the hub enforces) and
``websocket_connections``; a per-tier rate limit is the former."""


def validate_config(doc: Any) -> dict[str, Any]:
    """Check a whole layer document; return it, or raise InvalidRequest naming every problem.

    Known sections: ``rate_limits`` and ``resource_limits`` map names to non-negative
    integers, ``features`` maps names to booleans. Other sections are kept as given.
    """
    if not isinstance(doc, dict):
        raise InvalidRequest(
            "a configuration must be a JSON object of sections",
            details={"errors": [{"field": "body", "problem": "not an object"}]},
        )
    problems = [
        problem for section, body in doc.items() for problem in _section_problems(section, body)
    ]
    if problems:
        raise InvalidRequest("the configuration failed validation", details={"errors": problems})
    return doc


def _section_problems(section: str, body: Any) -> list[dict[str, str]]:
    """What is wrong with one section (its name, its shape, each known entry), in order."""
    if not _NAME.match(section):
        return [{"field": section, "problem": "section names: [A-Za-z0-9_.-]{1,64}"}]
    if section not in LIMIT_SECTIONS and section not in FLAG_SECTIONS:
        if body is None:
            return [{"field": section, "problem": "null is only allowed in PATCH"}]
        if (where := _unstorable(body, section)) is not None:
            return [{"field": where, "problem": "numbers must be finite and fit in 64 bits"}]
        return []
    if not isinstance(body, dict):
        return [{"field": section, "problem": "must be an object"}]
    return [
        problem
        for name, value in body.items()
        if (problem := _entry_problem(section, name, value)) is not None
    ]


def _entry_problem(section: str, name: str, value: Any) -> dict[str, str] | None:
    """What is wrong with one entry of a known section, or ``None``."""
    field = f"{section}.{name}"
    if not _NAME.match(name):
        return {"field": field, "problem": "names: [A-Za-z0-9_.-]{1,64}"}
    if section in FLAG_SECTIONS:
        if not isinstance(value, bool):
            return {"field": field, "problem": "must be true or false"}
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > MAX_LIMIT:
        return {"field": field, "problem": "must be a non-negative integer"}
    return None


def split_tier_values(doc: Any, *, patch: bool) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Split the spec's per-tier values out of a global write.

    ``{"rate_limits": {"free_tier": 50, "pro_tier": 200, "burst": 5}}`` becomes the global
    part ``{"rate_limits": {"burst": 5}}`` and the tier parts ``{"free": {"rate_limits":
    {"api_calls_per_hour": 50}}, "pro": {...200}}``: a number under ``<section>.<tier>_tier``
    sets that tier's :data:`PER_TIER_SCALAR_KEY` of the section, an object sets those
    names of the section in that tier's layer. Tier parts are merge patches of the tier
    layers (``null`` removes, in a PATCH). Only the known sections (``rate_limits``,
    ``resource_limits``, ``features``) are split; a section left empty by the split is
    dropped. Raises InvalidRequest for an unknown tier or a value the tier cannot take.
    """
    if not isinstance(doc, dict):
        return doc, {}
    global_part: dict[str, Any] = {}
    tiers: dict[str, dict[str, Any]] = {}
    problems: list[dict[str, str]] = []
    for section, body in doc.items():
        if section not in LIMIT_SECTIONS + FLAG_SECTIONS or not isinstance(body, dict):
            global_part[section] = body
            continue
        rest: dict[str, Any] = {}
        for name, value in body.items():
            match = PER_TIER_KEY.match(name)
            if match is None:
                rest[name] = value
                continue
            tier = match.group(1)
            tier_section = tiers.setdefault(tier, {}).setdefault(section, {})
            problem = _set_tier_value(tier_section, section, name, tier, value, patch=patch)
            if problem is not None:
                problems.append(problem)
        if rest or not body:
            global_part[section] = rest
    if problems:
        raise InvalidRequest("the configuration failed validation", details={"errors": problems})
    return global_part, tiers


def _set_tier_value(
    tier_section: dict[str, Any], section: str, name: str, tier: str, value: Any, *, patch: bool
) -> dict[str, str] | None:
    """Put one per-tier value (``<section>.<tier>_tier``) into its tier's section.

    Returns the problem with it, or ``None``.
    """
    field = f"{section}.{name}"
    scalar_key = PER_TIER_SCALAR_KEY.get(section)
    if tier not in TIERS:
        return {"field": field, "problem": f"unknown tier; one of {TIERS}"}
    if isinstance(value, dict):
        tier_section.update(value)
        return None
    if value is None and patch:
        if scalar_key is None:
            return {"field": field, "problem": "must be an object"}
        tier_section[scalar_key] = None
        return None
    if scalar_key is None:
        return {"field": field, "problem": f"must be an object of {section} names"}
    tier_section[scalar_key] = value
    try:
        validate_config({section: {scalar_key: value}})
    except InvalidRequest:
        return {"field": field, "problem": "must be a non-negative integer"}
    return None


def without_per_tier_keys(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without per-tier keys in its known sections (a global layer written before
    they were split out kept them literally; they never applied to anyone)."""
    if not any(
        isinstance(doc.get(section), dict)
        and any(PER_TIER_KEY.match(name) for name in doc[section])
        for section in LIMIT_SECTIONS + FLAG_SECTIONS
    ):
        return doc
    return {
        section: {n: v for n, v in body.items() if not PER_TIER_KEY.match(n)}
        if section in LIMIT_SECTIONS + FLAG_SECTIONS and isinstance(body, dict)
        else body
        for section, body in doc.items()
    }


def refuse_per_tier_keys(doc: dict[str, Any], layer: str) -> None:
    """Per-tier keys mean something only in a global write; elsewhere they are a mistake."""
    problems = [
        {
            "field": f"{section}.{name}",
            "problem": f"per-tier keys belong in a global write, not in a {layer} layer",
        }
        for section in LIMIT_SECTIONS + FLAG_SECTIONS
        if isinstance(doc.get(section), dict)
        for name in doc[section]
        if (m := PER_TIER_KEY.match(name)) is not None and m.group(1) in TIERS
    ]
    if problems:
        raise InvalidRequest("the configuration failed validation", details={"errors": problems})


def _unstorable(value: Any, path: str) -> str | None:
    """The path of the first number JSON peers cannot round-trip (None if there is none)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**64 else path
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _unstorable(item, f"{path}.{key}")
        if found is not None:
            return found
    return None
