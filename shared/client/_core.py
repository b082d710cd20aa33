"""What the sync and async hub clients share: request building, response parsing,
retry decisions and the discovery cache. No I/O happens here.

Each operation is described by a :class:`Call` (method, path, body, headers, how to parse
the answer, whether a retry is safe). The two clients differ only in how they send a
Call and how they sleep between attempts; everything else is decided by
:class:`ClientCore`, so the clients cannot drift apart.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from shared.backoff import jittered_delay
from shared.errors import HubError, HubUnavailable, error_from_payload
from shared.logs import current_tenant_context
from shared.tenancy import HEADER_CORRELATION_ID, TenantContext

T = TypeVar("T")

USER_AGENT = "central-hub-client/0.1"
STALE_HEADER = "x-hub-stale"
# Statuses after which the same request may succeed: the hub or its backend is briefly
# unavailable. 429 is left to the caller (QuotaExceeded/RateLimited carry retry hints).
RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    Attempt ``n`` (0-based) that failed waits ``d/2 + uniform(0, d/2)`` seconds before the
    next one, where ``d = min(max_delay, base_delay * 2**n)`` ("equal jitter": never
    zero, never more than the cap, and clients that failed together spread out).

    Args:
        attempts: total tries of one request, first one included (>= 1).
        base_delay: the first backoff cap, in seconds.
        max_delay: the largest backoff, in seconds.
    """

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        """Refuse a policy that would never try."""
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return jittered_delay(attempt, self.base_delay, self.max_delay, rng)


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One hub request, ready to send, with its parser.

    ``idempotent`` calls are retried even when the request may have reached the hub
    (read timeouts); others only when it certainly did not (connection failures).
    ``cache_key`` marks discovery answers that are remembered and served stale when
    the hub cannot be reached.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] | None = None
    json_body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True
    timeout: float | None = None
    cache_key: tuple[str, ...] | None = None
    # Non-2xx statuses whose body is still the answer (the hub's health report is 503
    # while it has never synced, and says why).
    answer_statuses: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Registration:
    """The hub's answer to a registration."""

    instance_id: str
    service_name: str
    revision: int
    ttl: int | None
    created: bool


@dataclass(frozen=True, slots=True)
class Discovery:
    """Where to call a service directly (``GET /services/discover/{name}``).

    ``stale`` is true when the hub answered from a stale view, or when the hub was
    unreachable and this is the last good answer kept by the client
    (``from_cache``, fetched at ``fetched_at``, seconds since the epoch).
    """

    service_name: str
    recommended_endpoint: str | None
    all_healthy_endpoints: list[str]
    confidence: dict[str, float]
    connection_type: str
    endpoints: list[dict[str, Any]]
    stale: bool
    fetched_at: float
    from_cache: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One instance to call, as chosen by the hub's load balancer."""

    host: str
    port: int
    load: float | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        """``http://host:port`` (the scheme the hub reported, if any)."""
        scheme = str(self.raw.get("protocol") or "http")
        return str(self.raw.get("url") or f"{scheme}://{self.host}:{self.port}")


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """A configuration at one version: a tenant's effective config (tier defaults, global
    layer and its overrides merged by the hub), or the global layer (``tenant_id`` None)."""

    tenant_id: str | None
    subscription_tier: str | None
    config: dict[str, Any]
    version: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class ServerSentEvent:
    """One event of a ``text/event-stream``."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder of the server-sent-events line format (WHATWG spec)."""

    def __init__(self) -> None:
        self._event = ServerSentEvent()
        self._data: list[str] = []
        self.last_event_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its newline); return an event when a blank line ends one."""
        if line == "":
            if not self._data and self._event.event == "message" and self._event.id is None:
                self._event = ServerSentEvent()
                return None
            event = self._event
            event.data = "\n".join(self._data)
            self._event = ServerSentEvent()
            self._data = []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event.event = value
        elif name == "id" and "\0" not in value:
            self._event.id = value
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._event.retry = int(value)
        return None


def _json(response: httpx.Response) -> Any:
    """The body as JSON, or a HubError naming the status."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HubError(
            f"hub answered {response.status_code} with a body that is not JSON",
            details={"status": response.status_code},
        ) from exc


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, or a HubError."""
    body = _json(response)
    if not isinstance(body, dict):
        raise HubError("hub answered with JSON that is not an object")
    return body


def _seg(value: str) -> str:
    """One URL path segment, escaped (ids and names never change the route)."""
    return quote(value, safe="")


class DiscoveryCache:
    """The last good answer per (query, tenant context) with the (monotonic) time it
    arrived; thread-safe, bounded (the oldest entry goes first)."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def put(self, key: tuple[str, ...], value: Any, received_at: float) -> None:
        """Remember ``value`` as the newest answer for ``key``."""
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (received_at, value)
            while len(self._entries) > self.max_entries:
                self._entries.pop(next(iter(self._entries)))

    def get(self, key: tuple[str, ...]) -> tuple[float, Any] | None:
        """``(received_at, answer)`` remembered for ``key``, or ``None``."""
        with self._lock:
            return self._entries.get(key)

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._entries.clear()


def _mark_cached(value: Any, *, stale: bool) -> Any:
    """A remembered answer, flagged as coming from the client's cache."""
    if isinstance(value, Discovery):
        return replace(value, stale=value.stale or stale, from_cache=True)
    if isinstance(value, dict):
        return {**value, "stale": bool(value.get("stale")) or stale, "from_cache": True}
    return None


class ConfigWatch:
    """The state of one long-polling config subscription, shared by both clients.

    Each round asks for :meth:`next_call`; an answer goes to :meth:`accept` (which says
    whether it is a new version to hand out), a failure to reach the hub to
    :meth:`backoff` (which says how long to wait before the next round).
    """

    def __init__(
        self,
        core: ClientCore,
        tenant_id: str | None,
        wait: float,
        tenant: TenantContext | None,
    ) -> None:
        self.core = core
        self.tenant_id = tenant_id
        self.wait = wait
        self.tenant = tenant
        self.index: int | None = None
        self.failures = 0

    def next_call(self) -> Call[ConfigSnapshot]:
        """The next request: a plain read first, then long polls past the last version."""
        return self.core.get_config(
            self.tenant_id, index=self.index, wait=self.wait, tenant=self.tenant
        )

    def accept(self, snapshot: ConfigSnapshot) -> bool:
        """Record an answer; true when it is a version the subscriber has not seen."""
        self.failures = 0
        if self.index is not None and snapshot.version == self.index:
            return False  # the long poll timed out without a change
        self.index = snapshot.version
        return True

    def backoff(self) -> float:
        """Seconds to wait after the hub could not be reached (grows, then stays capped)."""
        self.failures += 1
        return self.core.retry.delay(min(self.failures, 6), self.core.rng)


class ClientCore:
    """Builds calls, parses answers and decides retries for both hub clients.

    Args:
        tenant: default tenant context for every call (per-call ``tenant=`` wins).
        forward_ambient_tenant: with neither, send the context bound by
            :func:`shared.logs.log_context` as tenant headers, so a gateway handling a
            tenant's request discovers on that tenant's behalf. Off by default: the hub
            honours tenant headers only from gateway and admin tokens and refuses them
            (403) from others. The ambient correlation id is always propagated.
        token: bearer token sent as ``Authorization``.
        retry: retry policy for every call.
        service_name: names the caller in the User-Agent.
        cache_ttl: seconds a discovery answer is reused without asking the hub again
            (0, the default: always ask; the answer is still kept for stale serving).
        clock: wall clock for ``Discovery.fetched_at``.
        monotonic: clock for cache ages.
    """

    def __init__(
        self,
        *,
        tenant: TenantContext | None = None,
        forward_ambient_tenant: bool = False,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        service_name: str | None = None,
        cache_ttl: float = 0.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.tenant = tenant
        self.forward_ambient_tenant = forward_ambient_tenant
        self.token = token
        self.retry = retry or RetryPolicy()
        self.cache_ttl = cache_ttl
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.cache = DiscoveryCache()
        self.user_agent = f"{USER_AGENT} ({service_name})" if service_name else USER_AGENT

    # -- headers -------------------------------------------------------------------

    def default_headers(self) -> dict[str, str]:
        """Headers of every request of this client."""
        headers = {"user-agent": self.user_agent, "accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def effective_tenant(self, tenant: TenantContext | None) -> TenantContext | None:
        """The tenant context a call acts for (explicit, client default, or ambient)."""
        if tenant or self.tenant:
            return tenant or self.tenant
        return current_tenant_context() if self.forward_ambient_tenant else None

    def headers_for(self, tenant: TenantContext | None) -> dict[str, str]:
        """Tenant headers plus a correlation id (the context's, the ambient one, or new)."""
        ctx = self.effective_tenant(tenant)
        headers = ctx.to_headers() if ctx else {}
        ambient = current_tenant_context()
        if ambient is not None and ambient.correlation_id:
            headers.setdefault(HEADER_CORRELATION_ID, ambient.correlation_id)
        headers.setdefault(HEADER_CORRELATION_ID, uuid.uuid4().hex)
        return headers

    @staticmethod
    def _tenant_key(ctx: TenantContext | None) -> tuple[str, ...]:
        """The part of a cache key that separates tenant contexts."""
        if ctx is None:
            return ("", "", "")
        return (ctx.tenant_id or "", ctx.tier or "", ctx.user_id or "")

    # -- registration ----------------------------------------------------------------

    def register(self, registration: Mapping[str, Any]) -> Call[Registration]:
        """``POST /services/register`` (idempotent for the same instance)."""
        body = {k: v for k, v in registration.items() if v is not None}

        def parse(response: httpx.Response) -> Registration:
            """The typed answer from the hub's JSON."""
            data = _json_object(response)
            return Registration(
                instance_id=str(data["instance_id"]),
                service_name=str(data.get("service_name", body.get("name", ""))),
                revision=int(data.get("revision") or 0),
                ttl=data.get("ttl"),
                created=bool(data.get("created", response.status_code == 201)),
            )

        return Call("POST", "/services/register", parse, json_body=body, idempotent=True)

    def heartbeat(
        self, service: str, instance_id: str, load: float | None = None
    ) -> Call[dict[str, Any]]:
        """``PUT /services/{name}/instances/{id}/heartbeat``."""
        return Call(
            "PUT",
            f"/services/{_seg(service)}/instances/{_seg(instance_id)}/heartbeat",
            _json_object,
            json_body={"load": load} if load is not None else None,
        )

    def deregister(self, service: str, instance_id: str) -> Call[dict[str, Any]]:
        """``DELETE /services/{name}/instances/{id}``."""
        return Call(
            "DELETE", f"/services/{_seg(service)}/instances/{_seg(instance_id)}", _json_object
        )

    # -- discovery -------------------------------------------------------------------

    def discover(
        self, service: str, tenant: TenantContext | None = None, strategy: str | None = None
    ) -> Call[Discovery]:
        """``GET /services/discover/{name}`` (``strategy`` picks the recommended endpoint:
        the hub's default, or e.g. ``least_load``), remembered for stale serving."""

        def parse(response: httpx.Response) -> Discovery:
            """The typed answer from the hub's JSON."""
            data = _json_object(response)
            stale = bool(data.get("stale")) or response.headers.get(STALE_HEADER) == "true"
            return Discovery(
                service_name=str(data.get("service_name", service)),
                recommended_endpoint=data.get("recommended_endpoint"),
                all_healthy_endpoints=list(data.get("all_healthy_endpoints") or []),
                confidence=dict(data.get("confidence") or {}),
                connection_type=str(data.get("connection_type", "direct_call")),
                endpoints=list(data.get("endpoints") or []),
                stale=stale,
                fetched_at=self.clock(),
                raw=data,
            )

        ctx = self.effective_tenant(tenant)
        return Call(
            "GET",
            f"/services/discover/{_seg(service)}",
            parse,
            params={"strategy": strategy} if strategy else None,
            headers=self.headers_for(ctx),
            cache_key=("discover", service, strategy or "", *self._tenant_key(ctx)),
        )

    def list_services(
        self, tenant: TenantContext | None = None, *, legacy_mode: bool = False
    ) -> Call[dict[str, Any]]:
        """``GET /services/`` filtered by the tenant context, remembered for stale serving."""

        def parse(response: httpx.Response) -> dict[str, Any]:
            """The typed answer from the hub's JSON."""
            data = _json_object(response)
            if response.headers.get(STALE_HEADER) == "true":
                data["stale"] = True
            return data

        ctx = self.effective_tenant(tenant)
        return Call(
            "GET",
            "/services/",
            parse,
            params={"legacy_mode": "true"} if legacy_mode else None,
            headers=self.headers_for(ctx),
            cache_key=("list", str(legacy_mode), *self._tenant_key(ctx)),
        )

    def describe(self, service: str) -> Call[dict[str, Any]]:
        """``GET /services/{name}``: the service and all its instances."""
        return Call("GET", f"/services/{_seg(service)}", _json_object)

    def endpoint(
        self, service: str, strategy: str | None = None, tenant: TenantContext | None = None
    ) -> Call[Endpoint]:
        """``GET /services/{name}/endpoint``: one instance picked by the hub's balancer."""

        def parse(response: httpx.Response) -> Endpoint:
            """The typed answer from the hub's JSON."""
            data = _json_object(response)
            load = data.get("load")
            return Endpoint(
                host=str(data["host"]),
                port=int(data["port"]),
                load=float(load) if load is not None else None,
                raw=data,
            )

        return Call(
            "GET",
            f"/services/{_seg(service)}/endpoint",
            parse,
            params={"strategy": strategy} if strategy else None,
            headers=self.headers_for(tenant),
        )

    # -- config ----------------------------------------------------------------------

    @staticmethod
    def parse_config(data: Mapping[str, Any], tenant_id: str | None) -> ConfigSnapshot:
        """A config answer (or SSE event payload) as a snapshot."""
        return ConfigSnapshot(
            tenant_id=data.get("tenant_id", tenant_id),
            subscription_tier=data.get("subscription_tier"),
            config=dict(data.get("config") or {}),
            version=int(data.get("version") or 0),
            raw=dict(data),
        )

    @staticmethod
    def config_path(tenant_id: str | None) -> str:
        """``/config/{tenant_id}``, or ``/config`` for the global layer."""
        return "/config" if tenant_id is None else f"/config/{_seg(tenant_id)}"

    def get_config(
        self,
        tenant_id: str | None,
        *,
        index: int | None = None,
        wait: float | None = None,
        tenant: TenantContext | None = None,
    ) -> Call[ConfigSnapshot]:
        """``GET /config/{tenant_id}`` (``None``: the global layer); with ``index``, a long
        poll that returns when the version moves past it or after ``wait`` seconds
        (Consul-style blocking query)."""
        params: dict[str, str] = {}
        if index is not None:
            params["index"] = str(index)
            params["wait"] = f"{int(wait or 30)}s"
        return Call(
            "GET",
            self.config_path(tenant_id),
            lambda response: self.parse_config(_json_object(response), tenant_id),
            params=params or None,
            headers=self.headers_for(tenant),
            # The hub holds a long poll open up to ``wait``; allow for that plus slack.
            timeout=(wait or 30) + 10 if index is not None else None,
        )

    def write_config(
        self,
        tenant_id: str | None,
        changes: Mapping[str, Any],
        *,
        replace: bool = False,
        if_match: int | None = None,
    ) -> Call[dict[str, Any]]:
        """``PATCH`` (JSON merge patch; ``null`` removes a key) or, with ``replace``,
        ``PUT`` the global layer (``tenant_id`` None) or a tenant's overrides.

        ``if_match`` is the version the change is based on; the hub answers 412
        (PreconditionFailed) when the config moved on since.
        """
        headers = self.headers_for(None)
        if if_match is not None:
            headers["if-match"] = f'"{if_match}"'
        return Call(
            "PUT" if replace else "PATCH",
            self.config_path(tenant_id),
            _json_object,
            json_body=dict(changes),
            headers=headers,
            # every write makes a new version; a blind retry could write twice
            idempotent=False,
        )

    def config_watch(
        self, tenant_id: str | None, wait: float, tenant: TenantContext | None = None
    ) -> ConfigWatch:
        """A new long-polling subscription to a tenant's config (None: the global layer)."""
        return ConfigWatch(self, tenant_id, wait, tenant)

    def config_stream_request(
        self,
        tenant_id: str | None,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = 60.0,
        tenant: TenantContext | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments of ``http.stream(...)`` for a config's server-sent events.

        ``last_event_id`` resumes after that version (the hub replays what was missed).
        ``read_timeout`` should exceed the hub's keep-alive interval (15 s by default) so a
        silently dead connection is noticed.
        """
        headers = {**self.default_headers(), **self.headers_for(tenant)}
        headers["accept"] = "text/event-stream"
        if last_event_id is not None:
            headers["last-event-id"] = str(last_event_id)
        return {
            "method": "GET",
            "url": f"{self.config_path(tenant_id)}/watch",
            "headers": headers,
            "timeout": httpx.Timeout(10.0, read=read_timeout),
        }

    def config_socket(
        self,
        base_url: str,
        tenant_id: str,
        *,
        last_version: int | None = None,
        tenant: TenantContext | None = None,
    ) -> tuple[str, dict[str, str]]:
        """URL (``ws://``/``wss://``) and headers of a tenant's WebSocket config push
        (``/config/{tenant_id}/ws``); ``last_version`` resumes after that version."""
        url = httpx.URL(base_url.rstrip("/") + f"{self.config_path(tenant_id)}/ws")
        url = url.copy_with(scheme="wss" if url.scheme == "https" else "ws")
        if last_version is not None:
            url = url.copy_merge_params({"last_version": str(last_version)})
        return str(url), {**self.default_headers(), **self.headers_for(tenant)}

    def config_frame(self, text: str | bytes, tenant_id: str | None) -> ConfigSnapshot | None:
        """The snapshot carried by a WebSocket frame (None for keep-alives); an error
        frame raises the hub's error (e.g. Unauthorized when the token was revoked)."""
        frame = json.loads(text)
        if not isinstance(frame, dict):
            return None
        if frame.get("type") == "error":
            raise error_from_payload(frame, fallback_message="config push ended")
        if frame.get("type") != "config" or not isinstance(frame.get("data"), dict):
            return None
        return self.parse_config(frame["data"], tenant_id)

    @staticmethod
    def socket_refused(status_code: int, body: bytes | bytearray | None) -> HubError:
        """The hub's error for a refused WebSocket handshake (its standard error body)."""
        try:
            payload = json.loads(body or b"")
        except ValueError:
            payload = None
        return error_from_payload(payload, fallback_message=f"HTTP {status_code}")

    def config_event(
        self, event: ServerSentEvent | None, tenant_id: str | None
    ) -> ConfigSnapshot | None:
        """The snapshot carried by a decoded event, if it carries one."""
        if event is None or not event.data or event.event not in {"config", "message"}:
            return None
        return self.parse_config(json.loads(event.data), tenant_id)

    # -- circuits, quotas, errors, health ----------------------------------------------

    def report_outcome(
        self,
        service: str,
        *,
        success: bool,
        latency_ms: float | None = None,
        tier: str | None = None,
    ) -> Call[dict[str, Any]]:
        """``POST /circuits/{service}/report``: feed the hub's circuit for ``service``."""
        body: dict[str, Any] = {"success": success}
        if latency_ms is not None:
            body["latency_ms"] = latency_ms
        if tier is not None:
            body["tier"] = tier
        return Call(
            "POST",
            f"/circuits/{_seg(service)}/report",
            _json_object,
            json_body=body,
            idempotent=False,
        )

    def circuit(self, service: str, tenant: TenantContext | None = None) -> Call[dict[str, Any]]:
        """``GET /circuits/{service}``: the circuit of every tier; ``state`` is the one of
        the tier in the tenant context (the caller's)."""
        return Call(
            "GET", f"/circuits/{_seg(service)}", _json_object, headers=self.headers_for(tenant)
        )

    @staticmethod
    def circuit_state(body: Mapping[str, Any], tier: str | None = None) -> str:
        """``CLOSED``/``OPEN``/``HALF_OPEN`` from a circuits answer: that tier's, or the
        caller's (``state``)."""
        if tier is not None:
            tiers = body.get("tiers") or {}
            return str((tiers.get(tier) or {}).get("state", "")).upper()
        return str(body.get("state", "")).upper()

    def quota(
        self,
        action: str,
        tenant_id: str,
        resource_type: str,
        amount: int = 1,
        tenant: TenantContext | None = None,
    ) -> Call[dict[str, Any]]:
        """``POST /tenants/{id}/resources/{type}/{check|allocate|release}``."""
        if action not in {"check", "allocate", "release"}:
            raise ValueError(f"unknown quota action {action!r}")
        return Call(
            "POST",
            f"/tenants/{_seg(tenant_id)}/resources/{_seg(resource_type)}/{action}",
            _json_object,
            json_body={"amount": amount},
            headers=self.headers_for(tenant),
            # check is a read; allocating twice would count twice
            idempotent=action == "check",
        )

    def report_error(self, report: Mapping[str, Any]) -> Call[dict[str, Any]]:
        """``POST /errors``: one ErrorDNA analysis."""
        return Call(
            "POST",
            "/errors",
            _json_object,
            json_body=dict(report),
            headers=self.headers_for(None),
            idempotent=False,
        )

    def top_errors(
        self, service: str | None = None, tenant_id: str | None = None, limit: int = 10
    ) -> Call[dict[str, Any]]:
        """``GET /errors``: the most frequent error groups."""
        params = {"limit": str(limit)}
        if service:
            params["service"] = service
        if tenant_id:
            params["tenant_id"] = tenant_id
        return Call("GET", "/errors", _json_object, params=params)

    # -- deployments ------------------------------------------------------------------

    def coordinate_deployment(self, request: Mapping[str, Any]) -> Call[dict[str, Any]]:
        """``POST /deployments`` with the spec's body (``service``, ``version``,
        ``strategy``, ``batch_size`` and the optional safety fields). Not retried once it
        may have reached the hub: a second deployment would be refused (409) anyway."""
        return Call("POST", "/deployments", _json_object, json_body=dict(request), idempotent=False)

    def deployment(self, deployment_id: str) -> Call[dict[str, Any]]:
        """``GET /deployments/{id}``: plan, state and events."""
        return Call("GET", f"/deployments/{quote(deployment_id, safe='')}", _json_object)

    def deployment_action(self, deployment_id: str, action: str) -> Call[dict[str, Any]]:
        """``POST /deployments/{id}/{action}``: pause, resume or abort."""
        path = f"/deployments/{quote(deployment_id, safe='')}/{quote(action, safe='')}"
        return Call("POST", path, _json_object, idempotent=False)

    def health(self) -> Call[dict[str, Any]]:
        """``GET /health``: the hub's own health (503 answers still parse)."""
        return Call("GET", "/health", _json_object, answer_statuses=frozenset({503}))

    # -- sending decisions -------------------------------------------------------------

    def request_kwargs(self, call: Call[Any]) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request`` / ``AsyncClient.request``."""
        headers = {**self.default_headers(), **call.headers}
        headers.setdefault(HEADER_CORRELATION_ID, uuid.uuid4().hex)
        kwargs: dict[str, Any] = {
            "method": call.method,
            "url": call.path,
            "headers": headers,
        }
        if call.params:
            kwargs["params"] = dict(call.params)
        if call.json_body is not None:
            kwargs["json"] = call.json_body
        if call.timeout is not None:
            kwargs["timeout"] = call.timeout
        return kwargs

    def retry_delay_after_transport_error(
        self, call: Call[Any], exc: httpx.TransportError, attempt: int
    ) -> float | None:
        """Seconds to wait before retrying after ``exc``, or ``None`` to give up."""
        if attempt + 1 >= self.retry.attempts:
            return None
        # A connect failure never reached the hub; anything later might have.
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        if not (never_sent or call.idempotent):
            return None
        return self.retry.delay(attempt, self.rng)

    def retry_delay_after_response(
        self, call: Call[Any], response: httpx.Response, attempt: int
    ) -> float | None:
        """Seconds to wait before retrying after this answer, or ``None`` to use it."""
        if response.status_code not in RETRYABLE_STATUSES or not call.idempotent:
            return None
        if response.status_code in call.answer_statuses:
            return None
        if attempt + 1 >= self.retry.attempts:
            return None
        return self.retry.delay(attempt, self.rng)

    def result(self, call: Call[T], response: httpx.Response) -> T:
        """The parsed answer, remembered if cacheable; the hub's error raised as typed."""
        if response.is_success or response.status_code in call.answer_statuses:
            value = call.parse(response)
            if call.cache_key is not None:
                self.cache.put(call.cache_key, value, self.monotonic())
            return value
        if call.cache_key is not None and response.status_code in RETRYABLE_STATUSES:
            cached = self.stale_answer(call)
            if cached is not None:
                return cached
        raise self.error_for(response)

    @staticmethod
    def error_for(response: httpx.Response) -> HubError:
        """The typed exception for a non-2xx answer (``shared.errors`` classes)."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        fallback = f"hub answered HTTP {response.status_code} {response.reason_phrase}".strip()
        error = error_from_payload(body, fallback_message=fallback)
        error.details.setdefault("http_status", response.status_code)
        return error

    def fresh_answer(self, call: Call[T]) -> T | None:
        """A remembered answer younger than ``cache_ttl`` (no hub round trip), or ``None``."""
        if self.cache_ttl <= 0 or call.cache_key is None:
            return None
        entry = self.cache.get(call.cache_key)
        if entry is None or self.monotonic() - entry[0] > self.cache_ttl:
            return None
        fresh: T | None = _mark_cached(entry[1], stale=False)
        return fresh

    def stale_answer(self, call: Call[T]) -> T | None:
        """The last good answer of a cacheable call, marked stale, or ``None``."""
        if call.cache_key is None:
            return None
        entry = self.cache.get(call.cache_key)
        if entry is None:
            return None
        stale: T | None = _mark_cached(entry[1], stale=True)
        return stale

    def give_up(self, call: Call[T], exc: httpx.TransportError, attempts: int) -> T:
        """After the last failed attempt: the stale answer if there is one, else raise."""
        cached = self.stale_answer(call)
        if cached is not None:
            return cached
        raise HubUnavailable(
            f"hub unreachable: {type(exc).__name__}: {exc}".rstrip(": "),
            details={"method": call.method, "path": call.path, "attempts": attempts},
        ) from exc


def registration_body(
    name: str,
    host: str,
    port: int,
    *,
    protocol: str = "http",
    health_endpoint: str = "/health",
    tenant_capable: bool = True,
    subscription_requirements: Iterable[str] | None = None,
    resource_tier: str = "basic",
    weight: int = 1,
    version: str | None = None,
    tags: Iterable[str] = (),
    meta: Mapping[str, str] | None = None,
    ttl: int | None = None,
    instance_id: str | None = None,
    check: Mapping[str, Any] | None = None,
    backup: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /services/register`` (the spec's registration fields).

    ``check`` says how the hub checks the instance (``{"kind": "http"|"tcp"|"ttl",
    "interval", "timeout", ...}``); left out, the hub chooses from protocol and TTL.
    ``backup`` (``{"endpoint", "depends_on", "timeout_seconds"}``) makes the instance
    take part in system-wide backups; left out, it does not.
    """
    extra = {"backup": dict(backup)} if backup is not None else {}
    return extra | {
        "name": name,
        "host": host,
        "port": port,
        "protocol": protocol,
        "health_endpoint": health_endpoint,
        "tenant_capable": tenant_capable,
        "subscription_requirements": (
            list(subscription_requirements) if subscription_requirements else None
        ),
        "resource_tier": resource_tier,
        "weight": weight,
        "version": version,
        "tags": list(tags),
        "meta": dict(meta or {}),
        "ttl": ttl,
        "instance_id": instance_id,
        "check": dict(check) if check is not None else None,
    }
