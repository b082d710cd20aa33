"""The etcd backend: hub state in an etcd v3 cluster, through its HTTP/JSON gateway (etcd3gw).

Every hub key lives under ``/<namespace>/`` so several hubs (or test runs) can share one
etcd; the prefix is added on the way in and stripped on the way out. Audit batches live
beside it under ``/<namespace>.audit/``, outside every range and watch of the keyspace.

Why raw gateway calls instead of etcd3gw's helpers: ``put()`` returns only ``True`` and
``get()`` drops the response header, so the revision of a write (needed for the hub's
read-your-writes) would be lost. This module posts to ``/kv/put``, ``/kv/txn``,
``/kv/range``, ``/kv/deleterange``, ``/lease/*`` and reads ``header.revision`` itself.
Proto3 JSON quirks handled here: int64 fields arrive as strings, keys and values are
base64, and fields at their default value are omitted (a failed txn has no
``succeeded``, an empty value no ``value``, an expired lease's keep-alive no ``TTL``).

Failure handling, all translated into :mod:`shared.errors` at this edge:

* several endpoints: a connection error (or a member that does not answer a short
  status probe) moves on to the next endpoint; a write whose connection broke after it
  was sent is not repeated (it may have been applied);
* writes and linearizable reads first probe the member for a leader: without one, the
  write is refused at once as :class:`~shared.errors.NoQuorum` and never proposed; a
  write that a member accepts but does not commit within ``write_timeout`` is also
  NoQuorum (within about 2 s, not etcd's own 7-9 s; etcd may still apply it if quorum
  returns);
* range reads fall back to a serializable (member-local) read when a linearizable one
  cannot be served, so a hub that starts or resyncs during quorum loss still sees data;
* watch: etcd3gw's watcher blocks forever when its member dies, so this module runs its
  own stream over ``/v3/watch`` in a thread, with progress notifications and a probe of
  the member every ``watch_liveness_interval``; a dead, hung or leaderless member ends
  the watch with :class:`~shared.errors.BackendUnavailable` (the caller resumes from its
  last revision + 1, on another member), a compacted start revision with
  :class:`~shared.errors.RevisionCompacted`.

etcd3gw and requests are synchronous: every call runs in a thread pool, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception

from adapters.base import (
    Backend,
    Capabilities,
    EventType,
    KeyValue,
    Lease,
    Put,
    Snapshot,
    WatchEvent,
    check_puts,
    prefix_end,
)
from shared.errors import (
    BackendTimeout,
    BackendUnavailable,
    HubError,
    InvalidRequest,
    LeaseNotFound,
    NoQuorum,
    RevisionCompacted,
    RevisionConflict,
)

T = TypeVar("T")

# The gateway path of etcd >= 3.4; given explicitly so etcd3gw skips its /version probe.
_API_PATH = "/v3/"
# gRPC status codes the gateway puts in error bodies.
_GRPC_INVALID_ARGUMENT = 3
_GRPC_DEADLINE_EXCEEDED = 4
_GRPC_NOT_FOUND = 5
_GRPC_FAILED_PRECONDITION = 9
_GRPC_OUT_OF_RANGE = 11
_GRPC_UNAVAILABLE = 14


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _b64_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _int(value: Any) -> int:
    """An int64 field of proto3 JSON: a string, or absent when zero."""
    return int(value) if value else 0


class _Mode(enum.Enum):
    """How a request is sent: which timeout, and whether the member must have a leader."""

    WRITE = "write"
    """Needs a leader; short write timeout; a timeout means NoQuorum."""
    READ = "read"
    """A linearizable read: needs a leader; read timeout."""
    LOCAL = "local"
    """Answered by the member alone (status, serializable reads); read timeout."""
    PROBE = "probe"
    """A status probe with the short probe timeout."""


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """One member's gateway address with its clients (one per timeout)."""

    url: str
    reader: Etcd3Client
    writer: Etcd3Client
    prober: Etcd3Client


class _Unreachable(Exception):
    """Internal: this endpoint could not be connected to; try the next one."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(reason)
        self.endpoint = endpoint
        self.reason = reason


class EtcdBackend(Backend):
    """Hub state in etcd v3, through the gateway of one or more members."""

    name: ClassVar[str] = "etcd"
    capabilities: ClassVar[Capabilities] = Capabilities(multi_process=True)

    def __init__(
        self,
        endpoints: list[str] | str,
        *,
        namespace: str = "hub",
        connect_timeout: float = 0.5,
        read_timeout: float = 2.0,
        write_timeout: float = 1.5,
        probe_timeout: float = 0.5,
        watch_liveness_interval: float = 1.0,
        watch_idle_timeout: float = 60.0,
        range_page_size: int = 2000,
        max_workers: int = 16,
    ) -> None:
        """
        Args:
            endpoints: gateway URLs (``http://127.0.0.1:2379``), a list or comma-separated.
            namespace: every key is stored under ``/<namespace>/``.
            connect_timeout: seconds to open a connection before trying the next endpoint.
            read_timeout: seconds a read may take before it counts as failed.
            write_timeout: seconds a write may take before it is reported as
                :class:`~shared.errors.NoQuorum` (the member answered but did not commit).
            probe_timeout: seconds a member may take to answer the status probe made
                before writes and linearizable reads (a hung member is skipped).
            watch_liveness_interval: a watch checks every this many seconds that its
                member answers and has a leader; if not, the watch ends.
            watch_idle_timeout: a watch stream silent this long is reopened from the
                next revision (after checking its member), so a half-open connection
                cannot hang a watch even where etcd sends progress notifications rarely.
            range_page_size: keys per request when reading a prefix.
            max_workers: threads for concurrent requests.
        """
        if isinstance(endpoints, str):
            endpoints = [e.strip() for e in endpoints.split(",")]
        self.endpoint_urls = [e.rstrip("/") for e in endpoints if e.strip()]
        if not self.endpoint_urls:
            raise InvalidRequest("the etcd backend needs at least one endpoint")
        for url in self.endpoint_urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidRequest(f"not an etcd endpoint URL: {url!r} (use http://host:port)")
        cleaned = namespace.strip("/")
        if not cleaned:
            raise InvalidRequest("the etcd namespace must not be empty")
        self.namespace = cleaned
        self._prefix = f"/{cleaned}/"
        self._audit_prefix = f"/{cleaned}.audit/"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.probe_timeout = probe_timeout
        self.watch_liveness_interval = watch_liveness_interval
        self.watch_idle_timeout = watch_idle_timeout
        self.range_page_size = range_page_size
        self.max_workers = max_workers
        self._endpoints: list[_Endpoint] = []
        self._session: requests.Session | None = None
        self._preferred = 0
        self._executor: ThreadPoolExecutor | None = None
        self._streams: set[_WatchStream] = set()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Set up clients and check that some member answers (else BackendUnavailable).

        May be called again after a failure; the clients are kept.
        """
        self._closed = False
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix="hub-etcd"
            )
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=len(self.endpoint_urls), pool_maxsize=self.max_workers
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
            self._endpoints = [self._endpoint(url, session) for url in self.endpoint_urls]
        await self._run(self._call, "/maintenance/status", {}, _Mode.LOCAL)

    def _endpoint(self, url: str, session: requests.Session) -> _Endpoint:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 2379)

        def client(timeout: float) -> Etcd3Client:
            # requests takes a (connect, read) pair; etcd3gw passes it through unchanged.
            pair: Any = (self.connect_timeout, timeout)
            return Etcd3Client(
                host=host,
                port=port,
                protocol=parts.scheme,
                timeout=pair,
                api_path=_API_PATH,
                session=session,
            )

        return _Endpoint(
            url=url,
            reader=client(self.read_timeout),
            writer=client(self.write_timeout),
            prober=client(self.probe_timeout),
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            stream.abort()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
        if self._session is not None:
            self._session.close()
            self._session = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoints": [_without_credentials(u) for u in self.endpoint_urls],
            "preferred_endpoint": _without_credentials(self.endpoint_urls[self._preferred]),
            "namespace": self.namespace,
        }

    # -- plumbing -------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        executor = self._executor
        if executor is None or self._closed:
            raise BackendUnavailable("the etcd backend is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except RuntimeError as exc:  # executor shut down by a concurrent close()
            raise BackendUnavailable("the etcd backend was closed") from exc

    def _call(self, path: str, body: dict[str, Any], mode: _Mode) -> dict[str, Any]:
        """POST one gateway request, failing over across endpoints on connection errors.

        Runs in a worker thread. Before a write or a linearizable read, the member is
        asked (with a short timeout) whether it has a leader: a hung member is skipped
        at once, a member without a leader would only sit on the request until the
        timeout, and a write proposal that is never made cannot be applied later behind
        the caller's back. A write that a member accepts but does not commit within
        ``write_timeout`` is reported as NoQuorum.
        """
        count = len(self._endpoints)
        if count == 0:
            raise BackendUnavailable("the etcd backend is not open")
        unreachable: list[str] = []
        leaderless: list[str] = []
        start = self._preferred
        for step in range(count):
            index = (start + step) % count
            endpoint = self._endpoints[index]
            try:
                if mode is not _Mode.LOCAL and not self._has_leader(endpoint):
                    leaderless.append(_without_credentials(endpoint.url))
                    continue
                answer = self._post(endpoint, path, body, mode)
            except _Unreachable as exc:
                unreachable.append(f"{_without_credentials(exc.endpoint)}: {exc.reason}")
                continue
            self._preferred = index
            return answer
        if leaderless:
            outcome = "nothing written" if mode is _Mode.WRITE else "no consistent read"
            raise NoQuorum(
                f"backend has no quorum: no reachable etcd member has a leader; {outcome}",
                details={"leaderless": leaderless, "unreachable": unreachable},
            )
        raise BackendUnavailable(
            "no etcd endpoint is reachable", details={"unreachable": unreachable}
        )

    def _has_leader(self, endpoint: _Endpoint) -> bool:
        """Whether the member knows a leader; _Unreachable if it does not answer in time."""
        try:
            status = self._post(endpoint, "/maintenance/status", {}, _Mode.PROBE)
        except BackendTimeout as exc:
            raise _Unreachable(endpoint.url, "no answer to a status probe in time") from exc
        return bool(_int(status.get("leader")))

    def _post(
        self, endpoint: _Endpoint, path: str, body: dict[str, Any], mode: _Mode
    ) -> dict[str, Any]:
        client = {
            _Mode.WRITE: endpoint.writer,
            _Mode.PROBE: endpoint.prober,
        }.get(mode, endpoint.reader)
        try:
            answer: dict[str, Any] = client.post(client.get_url(path), json=body)
            return answer
        except Etcd3Exception as exc:
            raise _translate(exc, endpoint.url, write=mode is _Mode.WRITE) from exc
        except requests.RequestException as exc:
            raise _Unreachable(endpoint.url, str(exc) or type(exc).__name__) from exc
        except ValueError as exc:  # a body that is not JSON: not an etcd gateway
            raise BackendUnavailable(
                f"etcd endpoint {_without_credentials(endpoint.url)} sent a malformed answer"
            ) from exc

    def _full(self, key: str) -> str:
        return self._prefix + key

    def _strip(self, raw_key: str | None) -> str:
        key = _unb64(raw_key).decode("utf-8", errors="surrogateescape")
        return key[len(self._prefix) :] if key.startswith(self._prefix) else key

    def _kv(self, raw: dict[str, Any]) -> KeyValue:
        return KeyValue(
            key=self._strip(raw.get("key")),
            value=_unb64(raw.get("value")),
            create_revision=_int(raw.get("create_revision")),
            mod_revision=_int(raw.get("mod_revision")),
            version=_int(raw.get("version")),
            lease=_int(raw.get("lease")) or None,
        )

    # -- KV -------------------------------------------------------------------------

    async def current_revision(self) -> int:
        answer = await self._run(
            self._call, "/kv/range", {"key": _b64(self._prefix), "count_only": True}, _Mode.READ
        )
        return _revision(answer)

    async def get(self, key: str) -> KeyValue | None:
        answer = await self._run(
            self._call, "/kv/range", {"key": _b64(self._full(key))}, _Mode.READ
        )
        kvs = answer.get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    async def range(self, prefix: str) -> Snapshot:
        full = self._full(prefix)
        return await self._run(self._range_sync, full)

    def _range_sync(self, full: str) -> Snapshot:
        """A consistent read of a prefix, in pages of ``range_page_size`` keys.

        Later pages are pinned to the first page's revision, so the result is one
        snapshot however many requests it takes (and no answer exceeds gRPC's size limit).
        """
        body: dict[str, Any] = {
            "key": _b64(full),
            "range_end": _b64(prefix_end(full)),
            "limit": str(self.range_page_size),
        }
        mode = _Mode.READ
        try:
            answer = self._call("/kv/range", body, mode)
        except (BackendTimeout, NoQuorum):
            # No leader to confirm a linearizable read: serve a member's local copy
            # (possibly behind) rather than nothing, so a starting hub still sees data.
            mode = _Mode.LOCAL
            body["serializable"] = True
            answer = self._call("/kv/range", body, mode)
        revision = _revision(answer)
        raw_items: list[dict[str, Any]] = list(answer.get("kvs") or [])
        while answer.get("more") and raw_items:
            after_last = _unb64(raw_items[-1].get("key")) + b"\0"
            body.update(key=_b64_bytes(after_last), revision=str(revision))
            answer = self._call("/kv/range", body, mode)
            raw_items.extend(answer.get("kvs") or [])
        return Snapshot(items=[self._kv(kv) for kv in raw_items], revision=revision)

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        lease: int | None = None,
        if_revision: int | None = None,
    ) -> int:
        full = self._full(key)
        request: dict[str, Any] = {"key": _b64(full), "value": _b64_bytes(bytes(value))}
        if lease is not None:
            request["lease"] = str(lease)
        if if_revision is None:
            answer = await self._run(self._call, "/kv/put", request, _Mode.WRITE)
            return _revision(answer)
        return await self._run(self._txn_sync, key, full, if_revision, {"request_put": request})

    async def put_all(self, puts: Sequence[Put]) -> int:
        check_puts(puts)
        return await self._run(self._put_all_sync, list(puts))

    def _put_all_sync(self, puts: list[Put]) -> int:
        compares: list[dict[str, Any]] = []
        failure: list[dict[str, Any]] = []
        for put in puts:
            if put.if_revision is None:
                continue
            full = _b64(self._full(put.key))
            compare: dict[str, Any] = {"key": full, "result": "EQUAL"}
            if put.if_revision == 0:
                compare.update(target="CREATE", create_revision="0")
            else:
                compare.update(target="MOD", mod_revision=str(put.if_revision))
            compares.append(compare)
            failure.append({"request_range": {"key": full}})
        success = [
            {"request_put": {"key": _b64(self._full(p.key)), "value": _b64_bytes(bytes(p.value))}}
            for p in puts
        ]
        answer = self._call(
            "/kv/txn",
            {"compare": compares, "success": success, "failure": failure},
            _Mode.WRITE,
        )
        if not answer.get("succeeded"):
            conditioned = [p for p in puts if p.if_revision is not None]
            for put, response in zip(conditioned, answer.get("responses") or [], strict=False):
                kvs = (response.get("response_range") or {}).get("kvs") or []
                actual = _int(kvs[0].get("mod_revision")) if kvs else 0
                if actual != put.if_revision:
                    raise RevisionConflict(
                        f"key {put.key!r} is at revision {actual}, not {put.if_revision}",
                        details={
                            "key": put.key,
                            "expected_revision": put.if_revision,
                            "actual_revision": actual,
                        },
                    )
            raise RevisionConflict("a key of the transaction changed concurrently")
        return _revision(answer)

    async def delete(self, key: str, *, if_revision: int | None = None) -> int | None:
        if if_revision == 0:
            raise InvalidRequest("a delete cannot require the key to be absent")
        full = self._full(key)
        if if_revision is None:
            answer = await self._run(
                self._call, "/kv/deleterange", {"key": _b64(full)}, _Mode.WRITE
            )
            return _revision(answer) if _int(answer.get("deleted")) else None
        return await self._run(
            self._txn_sync, key, full, if_revision, {"request_delete_range": {"key": _b64(full)}}
        )

    def _txn_sync(self, key: str, full: str, if_revision: int, operation: dict[str, Any]) -> int:
        """One compare-and-set: apply ``operation`` only if the key's mod_revision matches.

        ``if_revision == 0`` compares ``create_revision == 0``: etcd's way to say "absent".
        """
        compare: dict[str, Any] = {"key": _b64(full), "result": "EQUAL"}
        if if_revision == 0:
            compare.update(target="CREATE", create_revision="0")
        else:
            compare.update(target="MOD", mod_revision=str(if_revision))
        answer = self._call(
            "/kv/txn",
            {
                "compare": [compare],
                "success": [operation],
                # On failure read the key, so the conflict can say what the revision is.
                "failure": [{"request_range": {"key": _b64(full)}}],
            },
            _Mode.WRITE,
        )
        if not answer.get("succeeded"):  # omitted (proto3 default false) when it failed
            responses = answer.get("responses") or [{}]
            kvs = (responses[0].get("response_range") or {}).get("kvs") or []
            actual = _int(kvs[0].get("mod_revision")) if kvs else 0
            raise RevisionConflict(
                f"key {key!r} is at revision {actual}, not {if_revision}",
                details={"key": key, "expected_revision": if_revision, "actual_revision": actual},
            )
        return _revision(answer)

    async def compact(self, revision: int) -> None:
        """Forget the history before ``revision`` (watches from older revisions fail)."""
        # A revision already compacted away is fine: the history is gone either way.
        with contextlib.suppress(RevisionCompacted):
            await self._run(
                self._call,
                "/kv/compaction",
                {"revision": str(revision), "physical": True},
                _Mode.WRITE,
            )

    # -- audit batches (under their own prefix, never watched) -----------------------

    async def _audit_put(self, name: str, lines: list[bytes]) -> None:
        request = {
            "key": _b64(self._audit_prefix + name),
            "value": _b64_bytes(b"\n".join(lines)),
        }
        await self._run(self._call, "/kv/put", request, _Mode.WRITE)

    async def _audit_names(self) -> list[str]:
        body = {
            "key": _b64(self._audit_prefix),
            "range_end": _b64(prefix_end(self._audit_prefix)),
            "keys_only": True,
        }
        answer = await self._run(self._call, "/kv/range", body, _Mode.READ)
        start = len(self._audit_prefix)
        return [_unb64(kv.get("key")).decode()[start:] for kv in answer.get("kvs") or []]

    async def _audit_get(self, name: str) -> bytes | None:
        body = {"key": _b64(self._audit_prefix + name)}
        kvs = (await self._run(self._call, "/kv/range", body, _Mode.READ)).get("kvs") or []
        return _unb64(kvs[0].get("value")) if kvs else None

    async def _audit_delete(self, names: list[str]) -> None:
        for name in names:
            body = {"key": _b64(self._audit_prefix + name)}
            await self._run(self._call, "/kv/deleterange", body, _Mode.WRITE)

    # -- leases ---------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> Lease:
        if ttl < 1:
            raise InvalidRequest("a lease TTL must be at least 1 second")
        answer = await self._run(
            self._call, "/lease/grant", {"TTL": str(ttl), "ID": "0"}, _Mode.WRITE
        )
        return Lease(id=_int(answer.get("ID")), ttl=_int(answer.get("TTL")))

    async def keep_alive(self, lease_id: int) -> int:
        answer = await self._run(self._call, "/lease/keepalive", {"ID": str(lease_id)}, _Mode.WRITE)
        # The gateway maps the keep-alive stream to one message under "result"; an
        # unknown or expired lease answers with TTL 0, i.e. no TTL field.
        ttl = _int((answer.get("result") or answer).get("TTL"))
        if ttl <= 0:
            raise LeaseNotFound(f"lease {lease_id} does not exist or has expired")
        return ttl

    async def revoke_lease(self, lease_id: int) -> None:
        with contextlib.suppress(LeaseNotFound):
            await self._run(self._call, "/lease/revoke", {"ID": str(lease_id)}, _Mode.WRITE)

    # -- watch ----------------------------------------------------------------------

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        if self._executor is None or self._closed:
            raise BackendUnavailable("the etcd backend is not open")
        full = self._full(prefix)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_StreamItem] = asyncio.Queue()
        endpoint = self._endpoints[await self._run(self._watchable_endpoint)]
        next_revision = max(1, start_revision)

        def open_stream() -> _WatchStream:
            stream = _WatchStream(
                endpoint=endpoint,
                request={
                    "create_request": {
                        "key": _b64(full),
                        "range_end": _b64(prefix_end(full)),
                        "start_revision": str(next_revision),
                        "progress_notify": True,
                    }
                },
                timeout=(self.connect_timeout, self.watch_idle_timeout),
                deliver=lambda item: loop.call_soon_threadsafe(queue.put_nowait, item),
            )
            self._streams.add(stream)
            stream.start()
            return stream

        stream = open_stream()
        next_check = loop.time() + self.watch_liveness_interval
        try:
            while True:
                # A dead or partitioned member never says so, and one that lost its
                # leader keeps the stream open (even sending progress notifications)
                # while nothing can change: ask it every interval, busy or silent.
                if loop.time() >= next_check:
                    await self._run(self._check_member, endpoint)
                    next_check = loop.time() + self.watch_liveness_interval
                try:
                    async with asyncio.timeout(next_check - loop.time()):
                        item = await queue.get()
                except TimeoutError:
                    continue
                if isinstance(item, HubError):
                    raise item
                if item is _IDLE:
                    # Silent for watch_idle_timeout (an etcd without frequent progress
                    # notifications): if the member is fine, reopen quietly where we were.
                    await self._run(self._check_member, endpoint)
                    stream.abort()
                    self._streams.discard(stream)
                    stream = open_stream()
                    continue
                for raw in item.events:
                    kv = raw.get("kv") or {}
                    event = WatchEvent(
                        type=EventType.DELETE if raw.get("type") == "DELETE" else EventType.PUT,
                        key=self._strip(kv.get("key")),
                        revision=_int(kv.get("mod_revision")),
                        value=None if raw.get("type") == "DELETE" else _unb64(kv.get("value")),
                        lease=_int(kv.get("lease")) or None,
                    )
                    next_revision = event.revision + 1
                    yield event
                if item.progress is not None:
                    next_revision = max(next_revision, item.progress + 1)
                    yield WatchEvent(type=EventType.PROGRESS, key="", revision=item.progress)
        finally:
            stream.abort()
            self._streams.discard(stream)

    def _watchable_endpoint(self) -> int:
        """The first endpoint (from the preferred one) that answers and has a leader."""
        count = len(self._endpoints)
        problems: list[BackendUnavailable] = []
        for step in range(count):
            index = (self._preferred + step) % count
            try:
                self._check_member(self._endpoints[index])
            except BackendUnavailable as exc:
                problems.append(exc)
                continue
            self._preferred = index
            return index
        details = {"endpoints": [p.message for p in problems]}
        if any(isinstance(p, NoQuorum) for p in problems):
            raise NoQuorum("backend has no quorum: no etcd member has a leader", details=details)
        raise BackendUnavailable("no etcd endpoint is reachable", details=details)

    def _check_member(self, endpoint: _Endpoint) -> None:
        """Raise unless the member answers and knows a leader."""
        try:
            has_leader = self._has_leader(endpoint)
        except _Unreachable as exc:
            raise BackendUnavailable(
                f"etcd endpoint {_without_credentials(exc.endpoint)} is unreachable: {exc.reason}"
            ) from exc
        if not has_leader:
            raise NoQuorum(
                f"backend has no quorum: etcd member {_without_credentials(endpoint.url)} "
                "has no leader"
            )

    # -- backup (issue 14) ------------------------------------------------------------

    snapshot_consistency: ClassVar[str] = (
        "linearizable range pinned to one etcd revision (pages read at that revision)"
    )

    async def snapshot(self) -> Snapshot:
        """The namespace at one revision, linearizable: never a member's stale local copy.

        Unlike :meth:`range`, there is no serializable fallback: without quorum this
        raises :class:`~shared.errors.NoQuorum` rather than back up old data.
        """
        full = self._full("")
        return await self._run(self._snapshot_sync, full)

    def _snapshot_sync(self, full: str) -> Snapshot:
        body: dict[str, Any] = {
            "key": _b64(full),
            "range_end": _b64(prefix_end(full)),
            "limit": str(self.range_page_size),
        }
        answer = self._call("/kv/range", body, _Mode.READ)
        revision = _revision(answer)
        raw_items: list[dict[str, Any]] = list(answer.get("kvs") or [])
        while answer.get("more") and raw_items:
            after_last = _unb64(raw_items[-1].get("key")) + b"\0"
            body.update(key=_b64_bytes(after_last), revision=str(revision))
            answer = self._call("/kv/range", body, _Mode.READ)
            raw_items.extend(answer.get("kvs") or [])
        return Snapshot(items=[self._kv(kv) for kv in raw_items], revision=revision)


@dataclass(frozen=True, slots=True)
class _Batch:
    """One watch response: key events and/or a progress revision."""

    events: list[dict[str, Any]]
    progress: int | None = None


_IDLE = _Batch(events=[])
"""Stream marker: nothing arrived for the read timeout (not an error by itself)."""

_StreamItem = _Batch | HubError


class _WatchStream:
    """One ``/v3/watch`` HTTP stream read by a thread of its own.

    Each line of the stream is a JSON ``{"result": WatchResponse}``. The thread hands
    batches (or the final error) to the event loop through ``deliver``; :meth:`abort`
    shuts the socket so a blocked read returns at once.
    """

    def __init__(
        self,
        *,
        endpoint: _Endpoint,
        request: dict[str, Any],
        timeout: tuple[float, float],
        deliver: Callable[[_StreamItem], Any],
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.timeout = timeout
        self._deliver = deliver
        # A session per stream: the streaming connection never goes back to a shared pool.
        self._session = requests.Session()
        self._response: requests.Response | None = None
        self._aborted = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="hub-etcd-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def abort(self) -> None:
        """Stop reading: shut the socket down so a blocked read returns; never blocks.

        The reader thread closes the response and its session as it exits.
        """
        self._aborted.set()
        with self._lock:
            response = self._response
        if response is not None:
            shutdown = getattr(response.raw, "shutdown", None)
            with contextlib.suppress(Exception):
                if shutdown is not None:
                    shutdown()

    def _emit(self, item: _StreamItem) -> None:
        if self._aborted.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the event loop is already closed
            self._deliver(item)

    def _run(self) -> None:
        try:
            self._read()
        finally:
            with self._lock:
                response, self._response = self._response, None
            if response is not None:
                response.close()
            self._session.close()

    def _read(self) -> None:
        url = self.endpoint.reader.get_url("/watch")
        where = _without_credentials(self.endpoint.url)
        try:
            response = self._session.post(url, json=self.request, stream=True, timeout=self.timeout)
            with self._lock:
                self._response = response
            if self._aborted.is_set():
                return
            if response.status_code != 200:
                self._emit(BackendUnavailable(f"etcd watch on {where} refused: {response.text}"))
                return
            for line in response.iter_lines():
                if self._aborted.is_set():
                    return
                if not line.strip():
                    continue
                error = self._handle(json.loads(line))
                if error is not None:
                    self._emit(error)
                    return
            self._emit(BackendUnavailable(f"etcd watch stream from {where} ended"))
        except requests.RequestException as exc:
            if _is_read_timeout(exc):
                self._emit(_IDLE)
                return
            self._emit(
                BackendUnavailable(
                    f"etcd watch stream from {where} broke: {str(exc) or type(exc).__name__}"
                )
            )
        except ValueError:
            self._emit(BackendUnavailable(f"etcd watch stream from {where} sent malformed data"))

    def _handle(self, message: dict[str, Any]) -> HubError | None:
        if "error" in message:
            error = message["error"]
            text = error.get("message", "") if isinstance(error, dict) else str(error)
            if "no leader" in text:
                return NoQuorum(f"backend has no quorum: {text}")
            return BackendUnavailable(f"etcd watch failed: {text}")
        result = message.get("result") or {}
        compacted = _int(result.get("compact_revision"))
        if compacted:
            return RevisionCompacted(
                f"revision has been compacted (oldest kept: {compacted})",
                details={"compacted_revision": compacted - 1},
            )
        if result.get("canceled"):
            reason = result.get("cancel_reason") or "canceled by the server"
            if "no leader" in reason:
                return NoQuorum(f"backend has no quorum: {reason}")
            return BackendUnavailable(f"etcd watch canceled: {reason}")
        if result.get("created"):
            return None
        events = result.get("events") or []
        if events:
            self._emit(_Batch(events=events))
        else:
            # A response without events is a progress notification: every change up to
            # header.revision has been delivered.
            self._emit(_Batch(events=[], progress=_revision(result)))
        return None


def _is_read_timeout(error: requests.RequestException) -> bool:
    """A read timeout, before the headers (ReadTimeout) or mid-stream (wrapped by requests)."""
    if isinstance(error, requests.ReadTimeout):
        return True
    return bool(error.args) and isinstance(error.args[0], urllib3.exceptions.ReadTimeoutError)


def _revision(answer: dict[str, Any]) -> int:
    return _int((answer.get("header") or {}).get("revision"))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _translate(exc: Etcd3Exception, endpoint: str, write: bool) -> Exception:
    """Turn an etcd3gw error into a hub error (or :class:`_Unreachable` to fail over)."""
    where = _without_credentials(endpoint)
    cause = exc.__context__
    if isinstance(cause, requests.ConnectionError) and _never_sent(cause):
        # etcd3gw's connection errors have an empty str(); the text is in detail_text.
        return _Unreachable(endpoint, exc.detail_text or type(cause).__name__)
    if isinstance(cause, requests.Timeout):
        if write:
            return NoQuorum(
                f"backend has no quorum: etcd member {where} did not commit the write in "
                "time; it may still be applied if quorum returns",
                details={"endpoint": where, "reason": "write timed out"},
            )
        return BackendTimeout(f"etcd member {where} did not answer in time")
    if isinstance(cause, requests.ConnectionError):
        # The request went out and the connection broke: a read can go elsewhere, but a
        # write may or may not have been applied, so repeating it could misreport (a CAS
        # would conflict with itself, a delete find nothing).
        if not write:
            return _Unreachable(endpoint, exc.detail_text or type(cause).__name__)
        return BackendUnavailable(
            f"etcd member {where} dropped the connection during a write; "
            "it may or may not have been applied",
            details={"endpoint": where},
        )
    code, text = _error_body(exc.detail_text)
    details = {"endpoint": where, "etcd_error": text}
    if code == _GRPC_NOT_FOUND and "lease" in text:
        return LeaseNotFound("the lease does not exist or has expired", details=details)
    if code == _GRPC_OUT_OF_RANGE and "compacted" in text:
        return RevisionCompacted(text, details=details)
    if code in (_GRPC_INVALID_ARGUMENT, _GRPC_OUT_OF_RANGE, _GRPC_FAILED_PRECONDITION):
        return InvalidRequest(f"etcd rejected the request: {text}", details=details)
    if "no leader" in text or "timed out" in text or "leader changed" in text:
        if write:
            return NoQuorum(f"backend has no quorum: {text}", details=details)
        return BackendTimeout(f"etcd could not serve the read: {text}", details=details)
    if code in (_GRPC_UNAVAILABLE, _GRPC_DEADLINE_EXCEEDED) or code is None:
        return _Unreachable(endpoint, text or "unavailable")
    return BackendUnavailable(f"etcd failed: {text}", details=details)


def _never_sent(error: requests.ConnectionError) -> bool:
    """Whether the request failed while connecting, so no member saw it."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )


def _error_body(detail: str | None) -> tuple[int | None, str]:
    """The gRPC code and message of a gateway error body."""
    if not detail:
        return None, ""
    try:
        body = json.loads(detail)
    except ValueError:
        return None, detail[:200]
    if not isinstance(body, dict):
        return None, detail[:200]
    code = body.get("code")
    return (code if isinstance(code, int) else None), str(body.get("message") or body.get("error"))
