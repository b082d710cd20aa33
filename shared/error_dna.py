"""ErrorDNA: fingerprint, classify and group errors so one failure is one line item.

The same failure shows up with different ids, prices, addresses and timestamps in its
message; ErrorDNA normalises those variable parts away and hashes what is left together
with the exception type and the top stack frames. Equal hashes form a group with a
count and first/last-seen times. A pattern library maps well-known failures
(connection refused, timeouts, DNS, auth, rate limits, deadlocks, broker outages, out of
memory, ...) to a category, a severity and concrete suggested actions.

Usage, as in the spec::

    error_dna = ErrorDNA("trading-engine")
    try:
        process_trading_data()
    except Exception as e:
        analysis = error_dna.analyze_error(
            error_message=str(e), context={"operation": "trading_data_processing"}
        )
        logger.error("Trading error", extra={"suggested_actions": analysis.suggested_actions})

``analyze_exception(exc)`` does the same from the exception object (type and frames
included). ``ErrorDNA`` also offers ``info``/``warning``/``error`` like a logger, because
the spec uses it that way; ``error``/``exception`` with an exception attached are
analysed too.
"""

from __future__ import annotations

import hashlib
import logging as std_logging
import re
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from shared.timestamps import iso_utc

Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

# How many innermost stack frames take part in the fingerprint: enough to tell two call
# sites apart, few enough that a refactor far up the stack does not split a group.
FINGERPRINT_FRAMES = 3

# --- message normalisation ---------------------------------------------------------
# Number and unit vocabularies of the unit rules below (longest alternatives first).
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
# no bare "b": "2b" is more often part of an id than two bytes
_SIZE_UNITS = r"[kmgtpe]i?b(?:ytes?)?|[kmgtpe]bits?|bytes?"
_COUNT_UNITS = (
    r"requests?|reqs?|calls?|messages?|msgs?|events?|ops|operations?|queries|query|"
    r"transactions?|txns?|orders?|ticks?|connections?|conns?|records?|rows?|items?"
)
_TIME_UNITS = (
    r"nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|"
    r"nsecs?|usecs?|msecs?|secs?|mins?|hrs?|ns|us|µs|ms|s|m|h|d"
)


# Applied in order; earlier rules protect structured tokens (a UUID, an address, a
# timestamp) from being shredded into "<n>" pieces by the later, more general ones.
_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    # quoted values: names of records, user input, SQL literals
    (re.compile(r"'(?:[^'\\]|\\.)*'"), "<str>"),
    (re.compile(r'"(?:[^"\\]|\\.)*"'), "<str>"),
    (re.compile(r"`[^`]*`"), "<str>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s,;)\]}>]+", re.I), "<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    # file system paths (POSIX and Windows)
    (re.compile(r"(?<![\w<])(?:[a-z]:\\|\\\\)[^\s:,;'\"]+", re.I), "<path>"),
    (re.compile(r"(?<![\w<>])(?:~|\.{1,2})?(?:/[\w.@+-]+){2,}/?"), "<path>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    # ISO 8601 / RFC 3339 and "2024-01-20 10:30:00,123"-style timestamps, then bare dates
    # and clock times
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?",
            re.I,
        ),
        "<ts>",
    ),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<ts>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    # IPv4 with optional port, bracketed IPv6 with port, bare IPv6
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    (re.compile(r"\[[0-9a-f:]*:[0-9a-f:]*\](?::\d{1,5})?", re.I), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}(?![\w:])", re.I), "<ip>"),
    # host:port (the host part is kept, the port is variable)
    (re.compile(r"(?<=[a-z])(?::\d{2,5})\b", re.I), ":<port>"),
    # numbers with units: the value varies, the kind of quantity does not, so "after 30s"
    # and "after 5000 ms" are one failure. Rates before sizes and durations ("1.5 MB/s"),
    # composite durations ("1m30s", "1h2m3.5s") before single ones.
    (
        re.compile(
            rf"(?<![\w<]){_NUMBER}\s?(?:{_SIZE_UNITS}|{_COUNT_UNITS})?\s?(?:/|\bper\s)\s?"
            rf"(?:{_TIME_UNITS})\b|(?<![\w<]){_NUMBER}\s?(?:rps|qps|tps|ops)\b",
            re.I,
        ),
        "<rate>",
    ),
    (re.compile(rf"(?<![\w<]){_NUMBER}\s?(?:%|percent\b|pct\b)", re.I), "<pct>"),
    (re.compile(rf"(?<![\w<]){_NUMBER}\s?(?:{_SIZE_UNITS})\b", re.I), "<size>"),
    (
        re.compile(
            r"(?<![\w<])(?:\d+(?:\.\d+)?(?:h|m|s|ms|us|µs|ns)){2,}\b"
            rf"|(?<![\w<]){_NUMBER}\s?(?:{_TIME_UNITS})\b",
            re.I,
        ),
        "<duration>",
    ),
    # hex: 0x-prefixed, or long runs of hex digits containing at least one digit (hashes,
    # object ids, trace ids)
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<hex>"),
    # the value after a word that announces an identifier ("tenant acme", "symbol EURUSD",
    # "order_id=ord_5"): such values vary per occurrence even when they hold no digit
    (
        re.compile(
            r"\b(tenant|user|account|order|client|customer|request|session|instance|symbol|"
            r"company|job|task|trade|position|ticket|id|uuid|trace|span|txn|correlation|"
            r"execution|deal|wallet|portfolio|pod|container)((?:_id)?(?:\s*[:=#]\s*|\s+))"
            r"(?!<)[\w.-]*\w",
            re.I,
        ),
        r"\1\2<id>",
    ),
    (re.compile(r"\b(\w+)=(?!<)[^\s,;)\]}]+"), r"\1=<v>"),
    # opaque ids led by a digit (ULIDs, short hashes, "9f8e-2b"): letters and digits mixed
    (
        re.compile(r"\b(?=[\w-]{4,}\b)(?!\d+(?:\.\d+)?e[-+]?\d+\b)\d[\w-]*[a-z][\w-]*\b", re.I),
        "<id>",
    ),
    # ids that mix letters and digits: ord_12345, user123, req-9f8e (a word with a digit)
    (re.compile(r"\b(?=[\w-]*\d)[a-z]+[_-]?[\w-]*\d[\w-]*\b", re.I), "<id>"),
    # remaining numbers, signed, with decimals or exponents (units were taken above)
    (re.compile(r"(?<![\w<])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.I), "<n>"),
)
_WHITESPACE = re.compile(r"\s+")


def normalize_message(message: str) -> str:
    """The message with its variable parts replaced by placeholders, lower-cased.

    Two occurrences of the same failure normalise to the same text even when their ids,
    numbers, addresses, paths, quoted values and timestamps differ.
    """
    text = message.strip()
    for pattern, placeholder in _NORMALISERS:
        text = pattern.sub(placeholder, text)
    return _WHITESPACE.sub(" ", text).lower()


# --- pattern library ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """A known failure: how to recognise it and what to do about it.

    A pattern matches when the exception type (or one of its bases) is in
    ``exception_types`` or the message matches ``regex``.
    """

    name: str
    category: str
    severity: Severity
    regex: re.Pattern[str] | None
    suggested_actions: tuple[str, ...]
    exception_types: tuple[str, ...] = ()
    retryable: bool = False

    def matches(self, message: str, type_names: Sequence[str]) -> bool:
        """Whether this pattern recognises the error."""
        if any(name in self.exception_types for name in type_names):
            return True
        return self.regex is not None and self.regex.search(message) is not None


def _p(
    name: str,
    category: str,
    severity: Severity,
    regex: str | None,
    actions: Iterable[str],
    *,
    types: Iterable[str] = (),
    retryable: bool = False,
) -> ErrorPattern:
    """Shorthand for a pattern of the built-in library."""
    return ErrorPattern(
        name=name,
        category=category,
        severity=severity,
        regex=re.compile(regex, re.I) if regex else None,
        suggested_actions=tuple(actions),
        exception_types=tuple(types),
        retryable=retryable,
    )


# Order matters: the first match wins, so specific patterns come before general ones
# (a "deadlock ... timeout" is a deadlock, a "broker connection refused" a broker outage).
DEFAULT_PATTERNS: tuple[ErrorPattern, ...] = (
    _p(
        "out_of_memory",
        "resource",
        "critical",
        r"out of memory|cannot allocate memory|\boom\b|memoryerror|killed process|"
        r"java\.lang\.outofmemoryerror|std::bad_alloc",
        [
            "Check the process's memory usage trend and container limit (OOM kills in dmesg)",
            "Bound in-memory buffers and caches (tick batches, feature windows)",
            "Scale out or raise the memory limit; take a heap profile if usage keeps growing",
        ],
        types=["MemoryError"],
    ),
    _p(
        "disk_full",
        "resource",
        "critical",
        r"no space left on device|\benospc\b|disk (?:is )?full|disk quota exceeded",
        [
            "Free disk space: rotate logs, prune old data and snapshots",
            "Check the volume size and the data retention settings",
        ],
    ),
    _p(
        "database_deadlock",
        "database",
        "high",
        r"deadlock|lock wait timeout|could not serialize access|serialization failure|"
        r"could not obtain lock|database is locked",
        [
            "Retry the transaction with backoff: the database aborted one side of a deadlock",
            "Acquire rows/tables in one consistent order in every code path",
            "Keep transactions short; avoid user or network waits inside them",
        ],
        retryable=True,
    ),
    _p(
        "database_connection_exhausted",
        "database",
        "critical",
        r"too many connections|remaining connection slots|connection pool (?:is )?exhausted|"
        r"queuepool limit|pool timeout|max_connections",
        [
            "Check for leaked connections (sessions not closed/returned to the pool)",
            "Size the pool against the database's max_connections across all replicas",
            "Add a connection pooler (e.g. PgBouncer) in front of the database",
        ],
        retryable=True,
    ),
    _p(
        "database_integrity",
        "database",
        "medium",
        r"duplicate key|unique constraint|integrity ?error|foreign key constraint|"
        r"violates not-null constraint|duplicate entry",
        [
            "Make the write idempotent (upsert or check by the natural/idempotency key)",
            "Check for a double submission of the same order/request",
        ],
        types=["IntegrityError"],
    ),
    _p(
        "broker_unavailable",
        "messaging",
        "critical",
        r"nobrokersavailable|no brokers? available|kafkatimeouterror|failed to update metadata|"
        r"broker(?:s)? (?:is |are )?(?:not available|"
        r"unavailable|down|transport failure)|leader not available|notleaderforpartition|"
        r"kafka.*(?:timed out|disconnect|unavailable|refused)|amqp.*(?:connection|channel)"
        r".*(?:closed|refused|lost)|nats: no servers|rabbitmq.*(?:unreachable|refused)",
        [
            "Check the message broker cluster health (brokers up, partition leaders elected)",
            "Verify bootstrap servers / broker addresses in the service config",
            "Buffer or pause producers with backoff; consumers resume from committed offsets",
        ],
        types=["NoBrokersAvailable", "KafkaTimeoutError", "AMQPConnectionError"],
        retryable=True,
    ),
    _p(
        "circuit_open",
        "dependency",
        "medium",
        r"circuit(?: breaker)? (?:is )?open|circuitbreakererror",
        [
            "Serve the fallback (cache, degraded answer) until the circuit half-opens",
            "Look at the dependency's health in the hub (GET /circuits/{service})",
        ],
        types=["CircuitBreakerError"],
        retryable=True,
    ),
    # Before the other network patterns: a connect timeout often reads like a connection
    # failure ("Failed to establish a new connection: [Errno 110] Connection timed out")
    # but the remedy is a timeout's. Names cover the common client libraries: asyncio and
    # socket (TimeoutError), httpx/httpcore, requests/urllib3, aiohttp, redis, grpc,
    # PostgreSQL drivers (statement timeout), websockets, Java/Go/Node messages.
    _p(
        "timeout",
        "timeout",
        "medium",
        r"timed? ?out|timeout|deadline[ _]exceeded|etimedout|esockettimedout|took too long|"
        r"statement timeout|canceling statement due to|i/o timeout",
        [
            "Check the dependency's latency (hub discovery confidence, its /metrics)",
            "Set explicit per-call timeouts and retry idempotent calls with backoff",
            "Look for slow queries or lock contention behind the slow call",
        ],
        types=[
            "TimeoutError",  # builtin; asyncio.TimeoutError and socket.timeout are aliases
            "TimeoutException",  # httpx base
            "ReadTimeout",
            "ConnectTimeout",
            "PoolTimeout",
            "WriteTimeout",
            "Timeout",  # requests.exceptions.Timeout
            "ReadTimeoutError",  # urllib3
            "ConnectTimeoutError",
            "ServerTimeoutError",  # aiohttp
            "ConnectionTimeoutError",
            "SocketTimeoutError",
            "QueryCanceledError",  # psycopg/asyncpg: statement_timeout
            "DeadlineExceeded",  # google-api-core / grpc
            "TimeoutExpired",  # subprocess
            "WebSocketTimeoutException",
        ],
        retryable=True,
    ),
    _p(
        "dns_failure",
        "network",
        "high",
        r"name or service not known|nodename nor servname|getaddrinfo failed|"
        r"temporary failure in name resolution|nxdomain|could not resolve|"
        r"no address associated with hostname|name resolution|\beai_again\b",
        [
            "Check the hostname in the service config or the discovery answer for typos",
            "Check the resolver (/etc/resolv.conf, cluster DNS) from this host",
            "Prefer addresses from hub discovery over hard-coded hostnames",
        ],
        types=["gaierror"],
        retryable=True,
    ),
    _p(
        "connection_refused",
        "network",
        "high",
        r"connection refused|econnrefused|errno 111|actively refused|connect call failed|"
        r"failed to establish a new connection",
        [
            "Check that the target service is running and listening on that host and port",
            "Re-discover the endpoint from the hub: the cached address may be stale",
            "Retry with backoff; report the failure to the hub so its circuit can open",
        ],
        types=["ConnectionRefusedError", "ConnectError"],
        retryable=True,
    ),
    _p(
        "connection_reset",
        "network",
        "medium",
        r"connection reset|econnreset|broken pipe|epipe|connection aborted|"
        r"server disconnected|remote end closed|remoteprotocolerror|unexpected eof",
        [
            "Retry idempotent requests; the peer closed the connection mid-request",
            "Check the peer's logs for crashes/restarts and its keep-alive timeout",
        ],
        types=["ConnectionResetError", "BrokenPipeError", "ConnectionAbortedError"],
        retryable=True,
    ),
    _p(
        "tls_error",
        "network",
        "high",
        r"certificate verify failed|ssl(?:error)?:|tls handshake|certificate has expired|"
        r"self[- ]signed certificate|wrong version number",
        [
            "Check the certificate chain and expiry of the peer",
            "Check that the CA bundle used by this service includes the issuer",
        ],
        types=["SSLError", "SSLCertVerificationError"],
    ),
    _p(
        "rate_limited",
        "rate_limit",
        "medium",
        r"\b429\b|rate limit|too many requests|quota exceeded|throttl|slow down",
        [
            "Back off and retry after the Retry-After interval",
            "Check the tenant's tier limits (GET /config/{tenant_id}) and current usage",
            "Batch or cache calls to stay under the limit; consider a tier upgrade",
        ],
        types=["RateLimited", "QuotaExceeded"],
        retryable=True,
    ),
    _p(
        "authentication_failed",
        "auth",
        "high",
        r"\b401\b|unauthori[sz]ed|authentication failed|invalid (?:api[ _-]?key|token|"
        r"credentials|signature)|(?:token|jwt|signature) (?:has )?expired|"
        r"password authentication failed|not authenticated",
        [
            "Check the service's credentials/API key and whether it was rotated",
            "Refresh the token; check clock skew if tokens expire early",
        ],
        types=["Unauthorized", "AuthenticationError"],
    ),
    _p(
        "permission_denied",
        "auth",
        "high",
        r"\b403\b|forbidden|permission denied|access denied|not allowed|insufficient "
        r"(?:privileges|permissions|scope)|tier_not_allowed",
        [
            "Check the caller's role/scope and the tenant's subscription tier",
            "Check file/database grants for the service account",
        ],
        types=["PermissionError", "Forbidden", "TierNotAllowed"],
    ),
    _p(
        "insufficient_margin",
        "trading",
        "high",
        r"insufficient (?:funds|margin|balance)|not enough (?:money|margin)|margin call",
        [
            "Reject the order to the user with the margin requirement; do not retry",
            "Check the account's free margin before sizing the order",
        ],
    ),
    _p(
        "market_closed",
        "trading",
        "low",
        r"market (?:is )?closed|trading (?:session )?(?:is )?(?:closed|disabled|halted)|"
        r"off quotes|requote",
        [
            "Queue or reject the order until the session opens; check the symbol's hours",
            "Refresh prices and resubmit on requotes",
        ],
        retryable=True,
    ),
    _p(
        "serialization_error",
        "data",
        "medium",
        r"jsondecodeerror|expecting value|invalid json|unexpected token|failed to parse|"
        r"decodeerror|error parsing message|unicodedecodeerror|malformed",
        [
            "Log the raw payload size and first bytes; check the producer's schema version",
            "Regenerate protobuf code from the shared proto/ schemas on both sides",
        ],
        types=["JSONDecodeError", "DecodeError", "UnicodeDecodeError"],
    ),
    _p(
        "validation_error",
        "validation",
        "low",
        r"validation error|validationerror|invalid (?:value|input|request|parameter|symbol|"
        r"volume|lot|price)|field required|is required|must be|unprocessable|\b422\b|"
        r"out of range",
        [
            "Return a 4xx to the caller with the field errors; do not retry unchanged input",
            "Validate at the edge (API gateway / request model) before processing",
        ],
        types=["ValidationError", "ValueError", "InvalidRequest"],
    ),
    _p(
        "not_found",
        "dependency",
        "low",
        r"\b404\b|not found|no such file or directory|\benoent\b|does not exist",
        [
            "Check the id/path: the resource may have been deleted or never created",
            "For services: re-discover through the hub; the instance may have moved",
        ],
        types=["FileNotFoundError", "NotFound", "ServiceNotFound", "KeyError"],
    ),
    _p(
        "service_unavailable",
        "dependency",
        "high",
        r"\b50[234]\b|service unavailable|bad gateway|gateway timeout|upstream|hub_unavailable",
        [
            "Use another healthy endpoint from hub discovery (all_healthy_endpoints)",
            "Check the dependency's health and recent deployments",
        ],
        types=["HubUnavailable", "BackendUnavailable"],
        retryable=True,
    ),
)

UNKNOWN_ACTIONS: tuple[str, ...] = (
    "No known pattern matched: inspect the stack trace and the context of the first occurrence",
    "If this recurs, add an ErrorPattern for it so the next one is classified",
)


def classify(
    message: str, type_names: Sequence[str] = (), patterns: Iterable[ErrorPattern] = ()
) -> ErrorPattern | None:
    """The first pattern (custom ones, then the defaults) that recognises the error."""
    for pattern in (*patterns, *DEFAULT_PATTERNS):
        if pattern.matches(message, type_names):
            return pattern
    return None


# --- results -------------------------------------------------------------------------


@dataclass(slots=True)
class ErrorGroup:
    """All occurrences that share one fingerprint."""

    fingerprint: str
    error_type: str
    normalized_message: str
    category: str
    severity: Severity
    pattern: str | None
    sample_message: str
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    tenants: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as RFC 3339 UTC strings)."""
        return {
            "fingerprint": self.fingerprint,
            "error_type": self.error_type,
            "normalized_message": self.normalized_message,
            "category": self.category,
            "severity": self.severity,
            "pattern": self.pattern,
            "sample_message": self.sample_message,
            "count": self.count,
            "first_seen": iso_utc(self.first_seen, timespec="auto"),
            "last_seen": iso_utc(self.last_seen, timespec="auto"),
            "tenants": sorted(self.tenants),
        }


@dataclass(frozen=True, slots=True)
class ErrorAnalysis:
    """What ErrorDNA concluded about one occurrence."""

    service_name: str
    fingerprint: str
    error_type: str
    message: str
    normalized_message: str
    category: str
    severity: Severity
    pattern: str | None
    suggested_actions: list[str]
    retryable: bool
    frames: list[str]
    context: dict[str, Any]
    occurrences: int
    first_seen: float
    last_seen: float

    @property
    def is_new(self) -> bool:
        """Whether this is the first occurrence of its group in this process."""
        return self.occurrences == 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the body reported to the hub's ``POST /errors``."""
        return {
            "service_name": self.service_name,
            "fingerprint": self.fingerprint,
            "error_type": self.error_type,
            "message": self.message,
            "normalized_message": self.normalized_message,
            "category": self.category,
            "severity": self.severity,
            "pattern": self.pattern,
            "suggested_actions": list(self.suggested_actions),
            "retryable": self.retryable,
            "frames": list(self.frames),
            "context": _json_safe(self.context),
            "occurrences": self.occurrences,
            "first_seen": iso_utc(self.first_seen, timespec="auto"),
            "last_seen": iso_utc(self.last_seen, timespec="auto"),
        }


def _json_safe(value: Any) -> Any:
    """``value`` with anything JSON cannot hold replaced by its repr."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def top_frames(tb: TracebackType | None, limit: int = FINGERPRINT_FRAMES) -> list[str]:
    """The innermost ``limit`` frames as ``"dir/file.py:function"`` (no line numbers).

    Line numbers are left out on purpose: an unrelated edit above the failing line would
    otherwise split one failure into two groups after every deploy.
    """
    if tb is None:
        return []
    frames = traceback.extract_tb(tb)[-limit:]
    out = []
    for frame in frames:
        parts = frame.filename.replace("\\", "/").rsplit("/", 2)
        out.append(f"{'/'.join(parts[-2:])}:{frame.name}")
    return out


def fingerprint_of(error_type: str, normalized_message: str, frames: Sequence[str]) -> str:
    """The group key: a short SHA-256 of type, normalised message and top frames."""
    material = "\n".join([error_type, normalized_message, *frames])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


Reporter = Callable[[ErrorAnalysis], object]


class ErrorDNA:
    """Error fingerprinting and grouping for one service.

    Args:
        service_name: the service whose errors this instance records.
        patterns: extra patterns, tried before the built-in library.
        max_groups: groups kept in memory; the least recently seen is dropped first.
        reporter: called with each analysis (e.g. ``HubClient.report_error``); its
            failures are logged and swallowed, since error handling must not fail.
        report_repeats: report every occurrence, not only the first of each group.
        clock: time source (seconds since the epoch), injectable for tests.
    """

    def __init__(
        self,
        service_name: str,
        *,
        patterns: Iterable[ErrorPattern] = (),
        max_groups: int = 1000,
        reporter: Reporter | None = None,
        report_repeats: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service_name = service_name
        self.patterns = tuple(patterns)
        self.max_groups = max_groups
        self.reporter = reporter
        self.report_repeats = report_repeats
        self._clock = clock
        self._groups: OrderedDict[str, ErrorGroup] = OrderedDict()
        self._lock = threading.Lock()
        self._log = std_logging.getLogger(f"{service_name}.error_dna")

    # -- analysis ----------------------------------------------------------------------

    def analyze_error(
        self,
        error_message: str | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        exception: BaseException | None = None,
        error_type: str | None = None,
    ) -> ErrorAnalysis:
        """Analyse one error occurrence and record it in its group.

        Pass ``exception`` for the best fingerprint (type and frames). With only
        ``error_message`` — the spec's ``analyze_error(error_message=str(e))`` inside an
        ``except`` block — the exception being handled is used when its text is that
        message, so the spec's usage groups as well as ``analyze_exception``.
        """
        if exception is None and error_message is not None:
            handling = sys.exc_info()[1]
            if handling is not None and str(handling) == error_message:
                exception = handling
        if exception is not None:
            message = error_message if error_message is not None else str(exception)
            type_names = [cls.__name__ for cls in type(exception).__mro__]
            resolved_type = error_type or type(exception).__name__
            frames = top_frames(exception.__traceback__)
        else:
            message = error_message or ""
            resolved_type = error_type or "Error"
            type_names = [resolved_type]
            frames = []
        normalized = normalize_message(message)
        pattern = classify(message, type_names, self.patterns)
        fingerprint = fingerprint_of(resolved_type, normalized, frames)
        ctx = dict(context or {})
        now = self._clock()
        tenant = ctx.get("tenant_id")

        with self._lock:
            group = self._groups.get(fingerprint)
            if group is None:
                group = ErrorGroup(
                    fingerprint=fingerprint,
                    error_type=resolved_type,
                    normalized_message=normalized,
                    category=pattern.category if pattern else "unknown",
                    severity=pattern.severity if pattern else "medium",
                    pattern=pattern.name if pattern else None,
                    sample_message=message[:1000],
                    first_seen=now,
                )
                self._groups[fingerprint] = group
                while len(self._groups) > self.max_groups:
                    self._groups.popitem(last=False)
            else:
                self._groups.move_to_end(fingerprint)
            group.count += 1
            group.last_seen = now
            if isinstance(tenant, str) and tenant:
                group.tenants.add(tenant)
            analysis = ErrorAnalysis(
                service_name=self.service_name,
                fingerprint=fingerprint,
                error_type=resolved_type,
                message=message,
                normalized_message=normalized,
                category=group.category,
                severity=group.severity,
                pattern=group.pattern,
                suggested_actions=list(pattern.suggested_actions if pattern else UNKNOWN_ACTIONS),
                retryable=pattern.retryable if pattern else False,
                frames=frames,
                context=ctx,
                occurrences=group.count,
                first_seen=group.first_seen,
                last_seen=group.last_seen,
            )
        if self.reporter is not None and (analysis.is_new or self.report_repeats):
            try:
                self.reporter(analysis)
            except Exception:  # reporting is best effort; the caller is already failing
                self._log.debug("error report failed", exc_info=True)
        return analysis

    def analyze_exception(
        self, exception: BaseException, context: Mapping[str, Any] | None = None
    ) -> ErrorAnalysis:
        """Analyse an exception object (its type and top frames join the fingerprint)."""
        return self.analyze_error(None, context, exception=exception)

    # -- groups ------------------------------------------------------------------------

    def groups(self) -> list[ErrorGroup]:
        """Every group currently held, most recently seen last."""
        with self._lock:
            return list(self._groups.values())

    def group(self, fingerprint: str) -> ErrorGroup | None:
        """The group with that fingerprint, if held."""
        with self._lock:
            return self._groups.get(fingerprint)

    def top_groups(self, limit: int = 10) -> list[ErrorGroup]:
        """The most frequent groups, then the most severe, then the most recent."""
        with self._lock:
            ranked = sorted(
                self._groups.values(),
                key=lambda g: (g.count, SEVERITY_ORDER[g.severity], g.last_seen),
                reverse=True,
            )
        return ranked[:limit]

    def reset(self) -> None:
        """Forget every group."""
        with self._lock:
            self._groups.clear()

    # -- logger-style use (the spec's ``logger = ErrorDNA(...)``) ---------------------

    @property
    def logger(self) -> std_logging.Logger:
        """The standard logger these methods write to (named after the service)."""
        return std_logging.getLogger(self.service_name)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log at DEBUG through :attr:`logger`."""
        self.logger.debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log at INFO through :attr:`logger`; ``extra={...}`` fields become JSON fields."""
        self.logger.info(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Log at WARNING through :attr:`logger`."""
        self.logger.warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> ErrorAnalysis | None:
        """Log at ERROR; with ``exc_info`` inside an ``except`` block, analyse the exception.

        The analysis (fingerprint, category, severity, suggested actions) is added to the
        log record's fields and returned.
        """
        exc = sys.exc_info()[1] if kwargs.get("exc_info") else None
        analysis = None
        if exc is not None:
            analysis = self.analyze_exception(exc, kwargs.get("extra"))
            extra = dict(kwargs.get("extra") or {})
            extra.setdefault("error_fingerprint", analysis.fingerprint)
            extra.setdefault("error_category", analysis.category)
            extra.setdefault("error_severity", analysis.severity)
            extra.setdefault("suggested_actions", analysis.suggested_actions)
            kwargs["extra"] = extra
        self.logger.error(msg, *args, **kwargs)
        return analysis

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> ErrorAnalysis | None:
        """Like :meth:`error` inside an ``except`` block, with the traceback logged."""
        kwargs.setdefault("exc_info", True)
        return self.error(msg, *args, **kwargs)
