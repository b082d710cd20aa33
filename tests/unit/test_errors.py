"""One error hierarchy: stable codes, one status each, and a lossless round trip."""

from __future__ import annotations

from facade.errors import STATUS_BY_ERROR, status_for
from shared import errors


def all_error_classes() -> list[type[errors.HubError]]:
    found, pending = [], [errors.HubError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))


def test_every_error_but_the_base_has_a_non_500_status() -> None:
    for cls in all_error_classes():
        if cls in (errors.HubError, errors.HubUnavailable):
            continue
        assert status_for(cls("x")) != 500, cls
    assert STATUS_BY_ERROR[errors.TierNotAllowed.__mro__[1]] == 403


def test_payload_round_trip_rebuilds_the_same_class() -> None:
    for cls in all_error_classes():
        original = cls("message here", details={"limit": 5})
        rebuilt = errors.error_from_payload(original.to_payload())
        assert type(rebuilt) is cls
        assert (rebuilt.code, rebuilt.message, rebuilt.details) == (
            cls.code,
            "message here",
            {"limit": 5},
        )


def test_unknown_codes_and_garbage_stay_hub_errors() -> None:
    future = errors.error_from_payload({"error": {"code": "new_thing", "message": "m"}})
    assert type(future) is errors.HubError
    assert future.code == "new_thing"
    assert isinstance(errors.error_from_payload("not json"), errors.HubError)
