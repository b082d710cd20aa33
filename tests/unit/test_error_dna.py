"""ErrorDNA on a corpus of realistic error messages from a trading platform."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from shared.error_dna import ErrorAnalysis, ErrorDNA, ErrorPattern, normalize_message

# Each family: the same failure seen several times with different variable parts
# (ids, numbers, addresses, ports, timestamps, paths, quoted values, uuids, hex), and the
# pattern ErrorDNA must recognise it as (None = no built-in pattern fits).
CORPUS: dict[str, tuple[str | None, list[str]]] = {
    "redis_refused": (
        "connection_refused",
        [
            "Error 111 connecting to 10.0.3.17:6379. Connection refused.",
            "Error 111 connecting to 10.0.9.2:6380. Connection refused.",
            "Error 111 connecting to 192.168.1.254:16379. Connection refused.",
        ],
    ),
    "http_refused": (
        "connection_refused",
        [
            "HTTPConnectionPool(host='risk-management', port=8011): Max retries exceeded with "
            "url: /risk/validate (Caused by NewConnectionError('<urllib3.connection."
            "HTTPConnection object at 0x7f3a2c1d4e50>: Failed to establish a new connection: "
            "[Errno 111] Connection refused'))",
            "HTTPConnectionPool(host='risk-management-2', port=8012): Max retries exceeded with "
            "url: /risk/limits/42 (Caused by NewConnectionError('<urllib3.connection."
            "HTTPConnection object at 0x7f00deadbeef>: Failed to establish a new connection: "
            "[Errno 111] Connection refused'))",
        ],
    ),
    "request_timeout": (
        "timeout",
        [
            "Request 3fa85f64-5717-4562-b3fc-2c963f66afa6 timed out after 30.5s at "
            "2024-01-20T10:30:00Z",
            "Request 9b2e1c77-0a4d-4f7e-9a31-5d0c2b6e8f10 timed out after 12s at "
            "2024-03-02T23:59:59.123+07:00",
        ],
    ),
    "dns": (
        "dns_failure",
        [
            "[Errno -2] Name or service not known: 'ml-processing-7.svc.cluster.local'",
            "[Errno -2] Name or service not known: 'data-bridge.svc.cluster.local'",
        ],
    ),
    "jwt_expired": (
        "authentication_failed",
        [
            "JWT expired for user user_123 at 2024-01-20 10:30:00",
            "JWT expired for user user_98765 at 2025-12-31 23:00:01",
        ],
    ),
    "rate_limit": (
        "rate_limited",
        [
            "429 Too Many Requests: tenant company_abc exceeded 1000 calls/hour",
            "429 Too Many Requests: tenant acme42 exceeded 10000 calls/hour",
        ],
    ),
    "validation": (
        "validation_error",
        [
            "Invalid volume 0.001 for symbol 'EURUSD' (min 0.01, step 0.01)",
            "Invalid volume 250 for symbol 'XAUUSD' (min 0.1, step 0.1)",
        ],
    ),
    "deadlock": (
        "database_deadlock",
        [
            "deadlock detected DETAIL: Process 12345 waits for ShareLock on transaction 98765;"
            " blocked by process 12346.",
            "deadlock detected DETAIL: Process 7 waits for ShareLock on transaction 1204;"
            " blocked by process 9.",
        ],
    ),
    "kafka_down": (
        "broker_unavailable",
        [
            "NoBrokersAvailable: bootstrap servers kafka-0:9092,kafka-1:9092 unreachable",
            "NoBrokersAvailable: bootstrap servers kafka-3:9093,kafka-4:9093 unreachable",
        ],
    ),
    "oom": (
        "out_of_memory",
        [
            "Cannot allocate memory: failed to allocate 536870912 bytes for tick buffer",
            "Cannot allocate memory: failed to allocate 1073741824 bytes for tick buffer",
        ],
    ),
    "missing_file": (
        "not_found",
        [
            "could not open file /var/lib/data/ticks/EURUSD-2024-01-20.parquet: "
            "No such file or directory",
            "could not open file /srv/cache/GBPJPY-2023-11-02.parquet: No such file or directory",
        ],
    ),
    "margin": (
        "insufficient_margin",
        [
            "Order ord_8812 rejected: insufficient margin (required 1523.50, free 200.12)",
            "Order ord_1 rejected: insufficient margin (required 99.00, free 0.00)",
        ],
    ),
    "duplicate": (
        "database_integrity",
        [
            'duplicate key value violates unique constraint "orders_pkey" DETAIL: Key '
            "(order_id)=(ord_55) already exists.",
            'duplicate key value violates unique constraint "orders_pkey" DETAIL: Key '
            "(order_id)=(ord_77812) already exists.",
        ],
    ),
    "ipv6_timeout": (
        "timeout",
        [
            "dial tcp [2001:db8::1]:443: i/o timeout",
            "dial tcp [fe80::1ff:fe23:4567:890a]:8443: i/o timeout",
        ],
    ),
    "checksum": (
        None,
        [
            "snapshot checksum 9f86d081884c7d659a2feaa0c55ad015 does not match header",
            "snapshot checksum 0c55ad0159f86d081884c7d659a2feaa does not match header",
        ],
    ),
}


@pytest.fixture
def dna() -> ErrorDNA:
    return ErrorDNA("trading-engine")


@pytest.mark.parametrize("family", sorted(CORPUS))
def test_variants_of_one_failure_share_a_fingerprint(dna: ErrorDNA, family: str) -> None:
    expected_pattern, variants = CORPUS[family]
    analyses = [dna.analyze_error(error_message=m, context={"f": family}) for m in variants]
    assert len({a.fingerprint for a in analyses}) == 1, [a.normalized_message for a in analyses]
    assert {a.pattern for a in analyses} == {expected_pattern}
    assert analyses[-1].occurrences == len(variants)
    assert analyses[0].is_new
    assert not analyses[-1].is_new


def test_different_failures_get_different_fingerprints(dna: ErrorDNA) -> None:
    fingerprints = {
        family: dna.analyze_error(error_message=variants[0]).fingerprint
        for family, (_, variants) in CORPUS.items()
    }
    assert len(set(fingerprints.values())) == len(CORPUS)
    assert len(dna.groups()) == len(CORPUS)


def test_normalisation_removes_each_kind_of_variable_part() -> None:
    cases = {
        "id 3fa85f64-5717-4562-b3fc-2c963f66afa6": "id <uuid>",
        "at 2024-01-20T10:30:00.123Z": "at <ts>",
        "peer 10.1.2.3:5432": "peer <ip>",
        "host db-primary:5432": "host db-primary:<port>",
        "file /var/log/app/x.log": "file <path>",
        "ptr 0xdeadBEEF": "ptr <hex>",
        "name 'orders'": "name <str>",
        "qty 12.5 px -3e-4": "qty <n> px <n>",
        "user user123 order ord_99": "user <id> order <id>",
        "mail ops@example.com": "mail <email>",
        "  Mixed   CASE  ": "mixed case",
    }
    for raw, expected in cases.items():
        assert normalize_message(raw) == expected, raw


def test_spec_usage_returns_suggested_actions(dna: ErrorDNA) -> None:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except Exception as e:
        analysis = dna.analyze_error(
            error_message=str(e), context={"operation": "trading_data_processing"}
        )
    assert analysis.category == "network"
    assert analysis.severity == "high"
    assert analysis.retryable
    assert any("listening" in action for action in analysis.suggested_actions)
    # inside an except block the handled exception supplies type and frames
    assert analysis.error_type == "ConnectionRefusedError"
    assert analysis.frames
    assert analysis.frames[-1].endswith(":test_spec_usage_returns_suggested_actions")
    assert analysis.context == {"operation": "trading_data_processing"}


def _fail_in_parser(value: str) -> None:
    int(value)


def _fail_in_pricer(value: str) -> None:
    int(value)


def test_frames_separate_the_same_message_from_different_call_sites(dna: ErrorDNA) -> None:
    analyses: list[ErrorAnalysis] = []
    for fn, value in [(_fail_in_parser, "x1"), (_fail_in_parser, "y22"), (_fail_in_pricer, "z")]:
        try:
            fn(value)
        except ValueError as exc:
            analyses.append(dna.analyze_exception(exc))
    parser_a, parser_b, pricer = analyses
    assert parser_a.fingerprint == parser_b.fingerprint
    assert pricer.fingerprint != parser_a.fingerprint
    assert parser_a.pattern == "validation_error"  # by exception type (ValueError)


def test_exception_type_alone_classifies(dna: ErrorDNA) -> None:
    analysis = dna.analyze_exception(socket.gaierror(-3, "Temporary failure"))
    assert analysis.pattern == "dns_failure"
    memory = dna.analyze_exception(MemoryError())
    assert memory.pattern == "out_of_memory"
    assert memory.severity == "critical"


def test_unknown_failures_get_generic_advice(dna: ErrorDNA) -> None:
    analysis = dna.analyze_error(error_message="flux capacitor misaligned by 3 units")
    assert analysis.pattern is None
    assert analysis.category == "unknown"
    assert analysis.suggested_actions


def test_custom_patterns_take_precedence(dna: ErrorDNA) -> None:
    import re

    custom = ErrorDNA(
        "svc",
        patterns=[
            ErrorPattern(
                name="mt5_terminal",
                category="broker",
                severity="critical",
                regex=re.compile(r"terminal not connected", re.I),
                suggested_actions=("Restart the MT5 terminal bridge",),
            )
        ],
    )
    analysis = custom.analyze_error(error_message="MT5 terminal not connected (timeout 5000)")
    assert analysis.pattern == "mt5_terminal"
    # without the custom pattern the built-in library sees only the timeout
    plain = dna.analyze_error(error_message="MT5 terminal not connected (timeout 5000)")
    assert plain.pattern == "timeout"


def test_groups_track_counts_first_and_last_seen_and_tenants() -> None:
    now = [1_700_000_000.0]
    dna = ErrorDNA("svc", clock=lambda: now[0])
    for i in range(3):
        now[0] += 10
        dna.analyze_error(
            error_message=f"Order ord_{i} rejected: insufficient margin (required {i}.5)",
            context={"tenant_id": f"tenant-{i % 2}"},
        )
    dna.analyze_error(error_message="Connection refused")
    top = dna.top_groups(1)[0]
    assert top.count == 3
    assert top.first_seen == 1_700_000_010.0
    assert top.last_seen == 1_700_000_030.0
    assert top.tenants == {"tenant-0", "tenant-1"}
    body = top.to_dict()
    assert body["first_seen"] == "2023-11-14T22:13:30Z"
    assert json.loads(json.dumps(body))["count"] == 3


def test_group_memory_is_bounded() -> None:
    dna = ErrorDNA("svc", max_groups=3)
    for word in ["alpha", "beta", "gamma", "delta", "epsilon"]:
        dna.analyze_error(error_message=f"{word} failed")
    assert [g.sample_message for g in dna.groups()] == [
        "gamma failed",
        "delta failed",
        "epsilon failed",
    ]


def test_reporter_gets_new_groups_and_its_failures_are_contained() -> None:
    reported: list[ErrorAnalysis] = []

    def reporter(analysis: ErrorAnalysis) -> None:
        reported.append(analysis)
        raise OSError("hub down")  # must not escape into the caller's error handling

    dna = ErrorDNA("svc", reporter=reporter)
    for i in range(3):
        dna.analyze_error(error_message=f"Request {i} timed out")
    assert len(reported) == 1
    assert reported[0].to_dict()["occurrences"] == 1


def test_logger_style_use_from_the_spec(caplog: pytest.LogCaptureFixture) -> None:
    logger = ErrorDNA("central-hub")
    with caplog.at_level(logging.INFO, logger="central-hub"):
        logger.info(
            "Service discovery request",
            extra={"tenant_id": "company_abc", "services_returned": 5},
        )
        try:
            raise TimeoutError("discovery backend timed out after 2s")
        except TimeoutError:
            analysis = logger.exception("discovery failed")
    info, error = caplog.records
    assert info.tenant_id == "company_abc"  # type: ignore[attr-defined]
    assert analysis is not None
    assert analysis.pattern == "timeout"
    assert error.error_fingerprint == analysis.fingerprint  # type: ignore[attr-defined]
    assert error.exc_info is not None
