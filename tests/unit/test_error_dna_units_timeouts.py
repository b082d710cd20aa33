"""ErrorDNA: numbers with units and ids normalised away, and timeouts of any client
library classified as timeouts (a corpus of real exceptions and library messages)."""

from __future__ import annotations

import httpcore
import httpx
import pytest
import requests
import urllib3.exceptions
import websockets.exceptions

from shared.error_dna import ErrorDNA, normalize_message

# Each family: one failure with different values, units or ids; its expected pattern.
UNIT_CORPUS: dict[str, tuple[str | None, list[str]]] = {
    "duration": (
        "timeout",
        [
            "risk check for order ord_5 timed out after 30s",
            "risk check for order ord_77 timed out after 5000 ms",
            "risk check for order ord_9 timed out after 1m30s",
            "risk check for order ord_12 timed out after 2.5 seconds",
        ],
    ),
    "size": (
        None,
        [
            "snapshot of 512MB exceeds the 256 MB upload limit",
            "snapshot of 2.5 GiB exceeds the 1,024 KB upload limit",
            "snapshot of 1048576 bytes exceeds the 64kB upload limit",
        ],
    ),
    "rate": (
        None,
        [
            "tick feed slowed to 1.5 MB/s (expected at least 10 MB/s)",
            "tick feed slowed to 300 KB/s (expected at least 2 GB/s)",
            "tick feed slowed to 120 msg/s (expected at least 5000 msgs per second)",
        ],
    ),
    "percentage": (
        None,
        [
            "cpu usage 93.5% above the 90% threshold on pricing",
            "cpu usage 100 % above the 75 percent threshold on pricing",
        ],
    ),
    "ids": (
        None,
        [
            "replay of event 01ARZ3NDEKTSV4RRFFQ69G5FAV stalled on trace "
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "replay of event 01HGW2BN7QK9YJ8Z3XK2M4P5RT stalled on trace "
            "00f067aa0ba902b7a3ce929d0e0e4736",
        ],
    ),
}

# The same kind of timeout as messages of different clients and languages.
TIMEOUT_MESSAGES = [
    # requests/urllib3 connect timeout: reads like a connection failure, is a timeout
    "HTTPSConnectionPool(host='pricing', port=443): Max retries exceeded with url: /quotes "
    "(Caused by ConnectTimeoutError(<urllib3.connection.HTTPSConnection object at 0x7f1>, "
    "'Connection to pricing timed out. (connect timeout=5)'))",
    "HTTPConnectionPool(host='risk', port=8011): Max retries exceeded with url: / (Caused by "
    "NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f2>: Failed to "
    "establish a new connection: [Errno 110] Connection timed out'))",
    "HTTPConnectionPool(host='risk', port=8011): Read timed out. (read timeout=2)",
    "<_InactiveRpcError of RPC that terminated with: status = StatusCode.DEADLINE_EXCEEDED>",
    "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
    "dial tcp 10.0.0.7:5432: i/o timeout",
    "connect ETIMEDOUT 10.0.0.7:443",
    "timeout of 5000ms exceeded",
    "java.net.SocketTimeoutException: Read timed out",
    "canceling statement due to statement timeout",
    "Timeout reading from socket",
    "timed out during opening handshake",
]


@pytest.mark.parametrize("family", sorted(UNIT_CORPUS))
def test_one_failure_with_other_values_and_units_is_one_group(family: str) -> None:
    dna = ErrorDNA("pricing")
    expected, variants = UNIT_CORPUS[family]
    analyses = [dna.analyze_error(error_message=m) for m in variants]
    assert len({a.fingerprint for a in analyses}) == 1, [a.normalized_message for a in analyses]
    assert {a.pattern for a in analyses} == {expected}


def test_each_kind_of_quantity_keeps_its_own_placeholder() -> None:
    cases = {
        "waited 250ms then 1h2m3.5s": "waited <duration> then <duration>",
        "read 1.5 MB/s, 300 rps, 5/min": "read <rate>, <rate>, <rate>",
        "disk 97.2% full": "disk <pct> full",
        "heap 1,024 MiB of 2GB": "heap <size> of <size>",
        "ulid 01ARZ3NDEKTSV4RRFFQ69G5FAV, short hash 9f8e-2b": "ulid <id>, short hash <id>",
        "id ord-xyz not found": "id <id> not found",
        # plain numbers and exponents stay numbers
        "qty 12.5 px -3e-4": "qty <n> px <n>",
    }
    for raw, expected in cases.items():
        assert normalize_message(raw) == expected, raw
    # different kinds of quantity stay different failures
    assert normalize_message("limit 30s") != normalize_message("limit 30MB")


def _raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as code would catch it."""
    try:
        raise exc
    except BaseException as caught:
        return caught


TIMEOUT_EXCEPTIONS: list[BaseException] = [
    TimeoutError(),
    TimeoutError(),  # empty message: the type alone must say it
    TimeoutError("timed out"),
    httpx.ReadTimeout("The read operation timed out"),
    httpx.ConnectTimeout(""),
    httpx.PoolTimeout(""),
    httpx.WriteTimeout(""),
    httpcore.ReadTimeout(""),
    requests.exceptions.ConnectTimeout("connect failed"),
    requests.exceptions.ReadTimeout(""),
    requests.exceptions.Timeout(""),
    urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out."),  # type: ignore[arg-type]
    urllib3.exceptions.ConnectTimeoutError(),
]


@pytest.mark.parametrize(
    "exc", TIMEOUT_EXCEPTIONS, ids=lambda e: type(e).__module__ + "." + type(e).__name__
)
def test_client_library_timeouts_are_timeouts(exc: BaseException) -> None:
    analysis = ErrorDNA("pricing").analyze_exception(_raised(exc))  # type: ignore[arg-type]
    assert analysis.pattern == "timeout", analysis.message
    assert analysis.category == "timeout"
    assert analysis.retryable


def test_websockets_open_timeout_is_a_timeout() -> None:
    # websockets raises the builtin TimeoutError for its open/close timeouts; its own
    # exceptions that are no timeouts must not be caught by the timeout pattern
    assert (
        ErrorDNA("s")
        .analyze_exception(_raised(TimeoutError("timed out during opening handshake")))
        .pattern
        == "timeout"
    )  # type: ignore[arg-type]
    closed = websockets.exceptions.ConnectionClosedError(None, None)
    assert ErrorDNA("s").analyze_exception(_raised(closed)).pattern != "timeout"  # type: ignore[arg-type]


@pytest.mark.parametrize("message", TIMEOUT_MESSAGES)
def test_timeout_messages_of_other_clients_are_timeouts(message: str) -> None:
    analysis = ErrorDNA("pricing").analyze_error(error_message=message)
    assert analysis.pattern == "timeout"
    assert analysis.category == "timeout"


def test_more_specific_failures_that_mention_a_timeout_keep_their_pattern() -> None:
    dna = ErrorDNA("pricing")
    cases = {
        "Lock wait timeout exceeded; try restarting transaction": "database_deadlock",
        "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00": (
            "database_connection_exhausted"
        ),
        "KafkaTimeoutError: Failed to update metadata after 60.0 secs.": "broker_unavailable",
        "[Errno 111] Connection refused": "connection_refused",
    }
    for message, pattern in cases.items():
        assert dna.analyze_error(error_message=message).pattern == pattern, message


@pytest.mark.parametrize(
    "type_name",
    ["ServerTimeoutError", "ConnectionTimeoutError", "QueryCanceledError", "DeadlineExceeded"],
)
def test_timeout_types_of_libraries_not_installed_here_are_timeouts(type_name: str) -> None:
    # aiohttp, asyncpg/psycopg and google-api-core are not dependencies: their timeout
    # classes are recognised by name (as reported by another process, with no message)
    analysis = ErrorDNA("pricing").analyze_error(error_message="", error_type=type_name)
    assert analysis.category == "timeout"
