"""A fake Consul agent (single node, dev mode) for contract tests: a real HTTP server.

Built from Consul's HTTP API documentation (developer.hashicorp.com/consul/api-docs:
``kv``, ``txn``, ``session``, ``agent/service``, ``catalog``, ``health``,
``features/blocking``), for exactly the endpoints the hub's Consul backend uses, plus
the agent TTL-check endpoints a test uses to play "Consul ran the check":

* ``GET /v1/status/leader``
* ``GET|PUT /v1/kv/<key>`` (``recurse``, ``keys``, ``acquire``, ``release``, blocking)
* ``PUT /v1/txn`` (KV verbs set, cas, lock, unlock, get, check-index, check-not-exists,
  delete, delete-cas; 200 when applied, 409 with ``Errors[{OpIndex, What}]`` when rolled
  back; KV results carry ``Value: null`` except for ``get``; deletes add no result)
* ``PUT /v1/session/create|renew/<id>|destroy/<id>`` (TTL between 10s and 86400s,
  behaviors release/delete, lock-delay)
* ``PUT /v1/agent/service/register`` / ``deregister/<id>``, ``GET /v1/agent/service/<id>``
* ``PUT /v1/agent/check/pass|warn|fail/<check id>``
* ``GET /v1/catalog/services``, ``GET /v1/health/state/any``,
  ``GET /v1/health/service/<name>`` (blocking)

Answers use the documented field names and types and the ``X-Consul-Index`` header;
blocking queries hold until the query's index passes ``index`` or ``wait`` elapses
(Consul's ``wait/16`` jitter is left out). Request bodies are decoded with Go's
case-insensitive field matching, as Consul's are. Every request is recorded (method,
path, query, body, ``X-Consul-Token``) so tests assert exactly what the adapter sent.

Deliberate simplifications, each noted where it matters: one node (``fake-node``) whose
agent syncs registrations to the catalog at once (a real agent's anti-entropy is
asynchronous); sessions expire at twice their TTL (the documented worst case); HTTP/TCP
checks are not run: a test sets their status with :meth:`set_check`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

NODE = "fake-node"
NODE_ADDRESS = "127.0.0.1"
DATACENTER = "dc1"
MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0
SESSION_TTL_MULTIPLIER = 2
"""The session docs: "sessions may not be reaped for up to double this TTL". The fake
takes that worst case, so nothing the adapter does may rely on prompt expiry."""


class ConsulError(Exception):
    """An HTTP error answer: status code and plain-text body, as Consul sends them."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    token: str | None

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass
class _Entry:
    key: str
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0
    session: str | None = None

    def to_json(self, *, with_value: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": (
                base64.b64encode(self.value).decode()
                if with_value and self.value is not None
                else None
            ),
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }
        if self.session:
            out["Session"] = self.session
        return out


@dataclass
class _Session:
    id: str
    name: str
    ttl: int | None
    behavior: str
    lock_delay: float
    create_index: int
    expires_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Name": self.name,
            "Node": NODE,
            "LockDelay": int(self.lock_delay * 1e9),
            "Behavior": self.behavior,
            "TTL": f"{self.ttl}s" if self.ttl else "",
            "NodeChecks": ["serfHealth"],
            "ServiceChecks": None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.create_index,
        }


@dataclass
class _Check:
    check_id: str
    name: str
    status: str
    service_id: str
    service_name: str
    type: str
    definition: dict[str, Any]
    create_index: int
    modify_index: int
    output: str = ""
    ttl: float | None = None
    ttl_deadline: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "Node": NODE,
            "CheckID": self.check_id,
            "Name": self.name,
            "Status": self.status,
            "Notes": "",
            "Output": self.output,
            "ServiceID": self.service_id,
            "ServiceName": self.service_name,
            "ServiceTags": [],
            "Type": self.type,
            "Definition": self.definition,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class _Service:
    definition: dict[str, Any]
    create_index: int
    modify_index: int
    check_ids: list[str] = field(default_factory=list)

    def catalog_json(self) -> dict[str, Any]:
        d = self.definition
        return {
            "ID": d["ID"],
            "Service": d["Service"],
            "Tags": d["Tags"],
            "Address": d["Address"],
            "Meta": d["Meta"],
            "Port": d["Port"],
            "Weights": d["Weights"],
            "EnableTagOverride": False,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


def _ci(body: dict[str, Any], name: str, default: Any = None) -> Any:
    """Go's encoding/json field matching: exact name first, then case-insensitive."""
    if name in body:
        return body[name]
    lowered = name.lower()
    for key, value in body.items():
        if key.lower() == lowered:
            return value
    alias = {"deregistercriticalserviceafter": "deregister_critical_service_after"}
    if lowered in alias:
        return body.get(alias[lowered], default)
    return default


def _duration(text: Any, *, field_name: str) -> float:
    """Seconds of a Go duration string ("10s", "1m30s", "250ms")."""
    if isinstance(text, int | float):
        return float(text) / 1e9  # Go's time.Duration in JSON numbers is nanoseconds
    raw = str(text or "").strip()
    if raw in ("", "0"):
        return 0.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    total, number, i = 0.0, "", 0
    while i < len(raw):
        ch = raw[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = next((u for u in ("ms", "us", "µs", "ns") if raw.startswith(u, i)), ch)
        if unit not in units or not number:
            raise ConsulError(400, f"Request decode failed: time: invalid duration {field_name}")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ConsulError(400, f"Request decode failed: time: missing unit in duration {raw!r}")
    return total


class FakeConsul:
    """In-memory Consul state behind a real HTTP server on 127.0.0.1."""

    def __init__(self, *, acl_tokens: dict[str, str] | None = None) -> None:
        """``acl_tokens`` enables ACLs: token -> "write" or "read"; others get 403."""
        self.acl_tokens = acl_tokens
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Condition()
        self._index = 12  # a dev agent has written a few raft entries before anyone asks
        self._kv: dict[str, _Entry] = {}
        self._tombstones: dict[str, int] = {}
        self._kv_table_index = 1
        self._lock_delays: dict[str, float] = {}
        self._sessions: dict[str, _Session] = {}
        self._services: dict[str, _Service] = {}
        self._checks: dict[str, _Check] = {}
        self._services_index = 5
        self._checks_index = 6
        self._checks["serfHealth"] = _Check(
            check_id="serfHealth",
            name="Serf Health Status",
            status="passing",
            service_id="",
            service_name="",
            type="",
            definition={},
            create_index=6,
            modify_index=6,
            output="Agent alive and reachable",
        )
        self.address = ""
        """``http://127.0.0.1:<port>`` once started."""
        self._stopping = False
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- server ---------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free 127.0.0.1 port; return the address ``http://127.0.0.1:<port>``."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake._lock:
                    fake._connections.discard(self.connection)
                super().finish()

            def _handle(self) -> None:
                fake._serve(self)

            do_GET = do_PUT = do_DELETE = do_POST = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        serve = threading.Thread(target=server.serve_forever, name="fake-consul", daemon=True)
        reaper = threading.Thread(target=self._reap_forever, name="fake-consul-ttl", daemon=True)
        self._threads = [serve, reaper]
        serve.start()
        reaper.start()
        self.address = f"http://127.0.0.1:{server.server_address[1]}"
        return self.address

    def stop(self) -> None:
        """Stop serving; held blocking queries are released first."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        # Like an agent that went away: kept-alive connections are cut, not served on.
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    # -- test helpers ---------------------------------------------------------------

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path starts with ``path_prefix`` (and method, if given)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def set_check(self, check_id: str, status: str, output: str = "") -> None:
        """Play the agent running a check: set its status as Consul would."""
        with self._lock:
            check = self._checks[check_id]
            if check.status != status or check.output != output:
                check.status, check.output = status, output
                check.modify_index = self._checks_index = self._bump()
            self._lock.notify_all()

    def check_ids(self, service_id: str) -> list[str]:
        """The check ids registered for a service."""
        with self._lock:
            return list(self._services[service_id].check_ids)

    # -- dispatch -------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        if self._stopping:
            handler.close_connection = True
            return
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        token = handler.headers.get("X-Consul-Token")
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, path, query, body, token))
        headers: dict[str, str] = {}
        try:
            self._check_dc(query)
            status, payload = self._route(handler.command, path, query, body, token, headers)
        except ConsulError as err:
            self._send(handler, err.status, err.message.encode(), "text/plain", headers)
            return
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload).encode()
        self._send(handler, status, data, "application/json", headers)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        content_type: str,
        headers: dict[str, str],
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _check_dc(query: dict[str, list[str]]) -> None:
        dc = query.get("dc", [""])[0]
        if dc and dc != DATACENTER:
            raise ConsulError(500, "No path to datacenter")

    def _authorize(self, token: str | None, *, write: bool) -> None:
        if self.acl_tokens is None:
            return
        if token is None or token == "":
            raise ConsulError(403, "Permission denied: anonymous token lacks permission")
        grant = self.acl_tokens.get(token)
        if grant is None:
            raise ConsulError(403, "ACL not found")
        if write and grant != "write":
            raise ConsulError(403, "Permission denied: token lacks write permission")

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        token: str | None,
        headers: dict[str, str],
    ) -> tuple[int, Any]:
        if path == "/v1/status/leader" and method == "GET":
            return 200, "127.0.0.1:8300"
        write = method in ("PUT", "POST", "DELETE")
        self._authorize(token, write=write)
        if path.startswith("/v1/kv/"):
            key = path[len("/v1/kv/") :]
            if method == "GET":
                return self._kv_get(key, query, headers)
            if method == "PUT":
                return self._kv_put(key, query, body)
            raise ConsulError(405, "method not allowed")
        if path == "/v1/txn" and method == "PUT":
            return self._txn(body)
        if path == "/v1/session/create" and method == "PUT":
            return self._session_create(body)
        if path.startswith("/v1/session/renew/") and method == "PUT":
            return self._session_renew(path.rsplit("/", 1)[1])
        if path.startswith("/v1/session/destroy/") and method == "PUT":
            return self._session_destroy(path.rsplit("/", 1)[1])
        if path == "/v1/agent/service/register" and method == "PUT":
            return self._service_register(body, query)
        if path.startswith("/v1/agent/service/deregister/") and method == "PUT":
            return self._service_deregister(path.rsplit("/", 1)[1])
        if path.startswith("/v1/agent/service/") and method == "GET":
            return self._agent_service(path.rsplit("/", 1)[1])
        if path == "/v1/agent/checks" and method == "GET":
            return self._agent_checks()
        if path.startswith("/v1/agent/check/") and method == "PUT":
            action, _, check_id = path[len("/v1/agent/check/") :].partition("/")
            return self._check_update(action, check_id, query)
        if path == "/v1/catalog/services" and method == "GET":
            return self._blocking(query, headers, self._catalog_services)
        if path == "/v1/health/state/any" and method == "GET":
            return self._blocking(query, headers, self._health_state_any)
        if path.startswith("/v1/health/service/") and method == "GET":
            name = path[len("/v1/health/service/") :]
            return self._blocking(query, headers, lambda: self._health_service(name))
        raise ConsulError(404, f"no fake for {method} {path}")

    # -- blocking -------------------------------------------------------------------

    def _bump(self) -> int:
        self._index += 1
        return self._index

    def _blocking(
        self,
        query: dict[str, list[str]],
        headers: dict[str, str],
        compute: Any,
    ) -> tuple[int, Any]:
        """Answer ``compute() -> (index, status, payload)``, holding while index <= ?index."""
        wanted = int(query.get("index", ["0"])[0] or 0)
        wait = min(
            _duration(query["wait"][0], field_name="wait") if "wait" in query else DEFAULT_WAIT,
            MAX_WAIT,
        )
        deadline = time.monotonic() + wait
        with self._lock:
            while True:
                index, status, payload = compute()
                remaining = deadline - time.monotonic()
                if wanted <= 0 or index > wanted or remaining <= 0 or self._stopping:
                    break
                self._lock.wait(remaining)
        headers["X-Consul-Index"] = str(max(index, 1))
        headers["X-Consul-KnownLeader"] = "true"
        headers["X-Consul-LastContact"] = "0"
        return status, payload

    # -- KV -------------------------------------------------------------------------

    def _kv_max_index(self) -> int:
        return max([self._kv_table_index, *self._tombstones.values()])

    def _kv_get(
        self, key: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, Any]:
        recurse = "recurse" in query
        keys_only = "keys" in query

        def compute() -> tuple[int, int, Any]:
            if recurse or keys_only:
                entries = sorted(
                    (e for k, e in self._kv.items() if k.startswith(key)), key=lambda e: e.key
                )
                # Consul's kvsListTxn: the highest index among the prefix's entries and
                # tombstones, else the whole table's index.
                sub = max(
                    [e.modify_index for e in entries]
                    + [i for k, i in self._tombstones.items() if k.startswith(key)]
                    + [0]
                )
                index = sub or self._kv_max_index()
                if not entries:
                    return index, 404, None
                if keys_only:
                    return index, 200, [e.key for e in entries]
                return index, 200, [e.to_json() for e in entries]
            entry = self._kv.get(key)
            index = self._kv_max_index()
            if entry is None:
                return index, 404, None
            return entry.modify_index, 200, [entry.to_json()]

        return self._blocking(query, headers, compute)

    def _kv_put(self, key: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        flags = int(query.get("flags", ["0"])[0] or 0)
        op: dict[str, Any]
        with self._lock:
            if "acquire" in query:
                op = {"Verb": "lock", "Key": key, "Session": query["acquire"][0]}
            elif "release" in query:
                op = {"Verb": "unlock", "Key": key, "Session": query["release"][0]}
            elif "cas" in query:
                op = {"Verb": "cas", "Key": key, "Index": int(query["cas"][0])}
            else:
                op = {"Verb": "set", "Key": key}
            op["Flags"] = flags
            op["Value"] = base64.b64encode(body).decode()
            try:
                self._apply_kv([op], self._index + 1)
            except _TxnFailure:
                return 200, False
            self._bump()
            self._lock.notify_all()
            return 200, True

    def _txn(self, body: bytes) -> tuple[int, Any]:
        try:
            ops = json.loads(body or b"[]")
        except ValueError as exc:
            raise ConsulError(400, f"Failed to parse body: {exc}") from exc
        if not isinstance(ops, list):
            raise ConsulError(400, "Failed to parse body: expected a JSON array")
        if len(ops) > 128:
            raise ConsulError(413, f"Transaction contains too many operations ({len(ops)} > 128)")
        kv_ops = []
        for op in ops:
            kv = _ci(op, "KV")
            if kv is None:
                raise ConsulError(400, "the fake implements KV transaction operations only")
            kv_ops.append(
                {
                    "Verb": _ci(kv, "Verb"),
                    "Key": _ci(kv, "Key"),
                    "Value": _ci(kv, "Value"),
                    "Flags": _ci(kv, "Flags", 0),
                    "Index": _ci(kv, "Index", 0),
                    "Session": _ci(kv, "Session", ""),
                }
            )
        with self._lock:
            try:
                results = self._apply_kv(kv_ops, self._index + 1)
            except _TxnFailure as failure:
                answer: dict[str, Any] = {
                    "Results": None,
                    "Errors": [{"OpIndex": failure.op_index, "What": failure.what}],
                }
                if all(op["Verb"] in _READ_VERBS for op in kv_ops):
                    # Read-only transactions are answered like reads (query metadata too).
                    answer.update(Index=0, LastContact=0, KnownLeader=True, ConsistencyLevel="")
                return 409, answer
            if any(op["Verb"] not in _READ_VERBS for op in kv_ops):
                self._bump()
                self._lock.notify_all()
            return 200, {"Results": [{"KV": r} for r in results], "Errors": None}

    def _apply_kv(self, ops: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
        """Apply KV ops atomically at raft ``index``; raise _TxnFailure and change nothing."""
        kv = {k: _Entry(**vars(e)) for k, e in self._kv.items()}
        tombstones = dict(self._tombstones)
        results: list[dict[str, Any]] = []
        wrote = False
        now = time.monotonic()
        for i, op in enumerate(ops):
            verb, key = op["Verb"], op["Key"]
            if not key:
                raise _TxnFailure(i, "Key cannot be blank")
            entry = kv.get(key)
            raw = op.get("Value")
            try:
                value = base64.b64decode(raw) if raw else b""
            except ValueError as exc:
                raise ConsulError(400, f"Failed to decode value: {exc}") from exc
            flags = int(op.get("Flags") or 0)
            session = op.get("Session") or ""
            if verb in ("set", "cas", "lock", "unlock"):
                if verb == "cas":
                    want = int(op.get("Index") or 0)
                    if (want == 0 and entry is not None) or (
                        want != 0 and (entry is None or entry.modify_index != want)
                    ):
                        raise _TxnFailure(i, f'failed to set key "{key}", index is stale')
                if verb == "lock":
                    if session not in self._sessions:
                        raise _TxnFailure(i, f'invalid session "{session}"')
                    if entry is not None and entry.session and entry.session != session:
                        raise _TxnFailure(i, f'failed to lock key "{key}", lock is already held')
                    if self._lock_delays.get(key, 0) > now and not (entry and entry.session):
                        raise _TxnFailure(i, f'failed to lock key "{key}", lock delay is in effect')
                if verb == "unlock" and (entry is None or entry.session != session):
                    raise _TxnFailure(
                        i,
                        f'failed to unlock key "{key}", lock isn\'t held, '
                        "or is held by another session",
                    )
                if entry is None:
                    entry = _Entry(key, value, flags, index, index)
                    kv[key] = entry
                else:
                    entry.value, entry.flags, entry.modify_index = value, flags, index
                if verb == "lock" and entry.session != session:
                    entry.session = session
                    entry.lock_index += 1
                if verb == "unlock":
                    entry.session = None
                tombstones.pop(key, None)
                wrote = True
                results.append(entry.to_json(with_value=False))
            elif verb == "get":
                if entry is None:
                    raise _TxnFailure(i, f'key "{key}" doesn\'t exist')
                results.append(entry.to_json())
            elif verb == "check-index":
                if entry is None:
                    raise _TxnFailure(i, f'failed to check index, key "{key}" doesn\'t exist')
                if entry.modify_index != int(op.get("Index") or 0):
                    raise _TxnFailure(
                        i,
                        f'failed index check for key "{key}", current modify index '
                        f"{entry.modify_index} != {op.get('Index')}",
                    )
                results.append(entry.to_json(with_value=False))
            elif verb == "check-not-exists":
                if entry is not None:
                    raise _TxnFailure(i, f'key "{key}" exists')
            elif verb in ("delete", "delete-cas"):
                if verb == "delete-cas":
                    # An absent key is already deleted: Consul answers 200 (no result).
                    want = int(op.get("Index") or 0)
                    if entry is not None and want and entry.modify_index != want:
                        raise _TxnFailure(i, f'failed to delete key "{key}", index is stale')
                if entry is not None:
                    del kv[key]
                    tombstones[key] = index
                    wrote = True
            else:
                raise _TxnFailure(i, f'unknown KV verb "{verb}"')
        if wrote:
            self._kv, self._tombstones = kv, tombstones
            self._kv_table_index = index
        return results

    # -- sessions -------------------------------------------------------------------

    def _session_create(self, body: bytes) -> tuple[int, Any]:
        spec = json.loads(body or b"{}")
        ttl_text = _ci(spec, "TTL", "")
        ttl = _duration(ttl_text, field_name="TTL") if ttl_text else 0.0
        if ttl_text and not 10 <= ttl <= 86_400:
            raise ConsulError(
                400, f"Invalid Session TTL '{int(ttl * 1e9)}', must be between [10s=24h0m0s]"
            )
        behavior = _ci(spec, "Behavior", "release") or "release"
        if behavior not in ("release", "delete"):
            raise ConsulError(400, f"Invalid Behavior setting '{behavior}'")
        delay_raw = _ci(spec, "LockDelay", "15s")
        lock_delay = _duration(delay_raw, field_name="LockDelay")
        with self._lock:
            index = self._bump()
            session = _Session(
                id=str(uuid.uuid4()),
                name=str(_ci(spec, "Name", "")),
                ttl=int(ttl) if ttl else None,
                behavior=behavior,
                lock_delay=lock_delay,
                create_index=index,
                expires_at=time.monotonic() + SESSION_TTL_MULTIPLIER * ttl if ttl else None,
            )
            self._sessions[session.id] = session
            return 200, {"ID": session.id}

    def _session_renew(self, session_id: str) -> tuple[int, Any]:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise ConsulError(404, f"Session id '{session_id}' not found")
            if session.ttl:
                session.expires_at = time.monotonic() + SESSION_TTL_MULTIPLIER * session.ttl
            return 200, [session.to_json()]

    def _session_destroy(self, session_id: str) -> tuple[int, Any]:
        try:
            uuid.UUID(session_id)
        except ValueError as exc:
            raise ConsulError(400, f"Invalid session ID: {session_id}") from exc
        with self._lock:
            if session_id in self._sessions:
                self._invalidate(session_id)
            return 200, True

    def _invalidate(self, session_id: str) -> None:
        """Consul's session invalidation: release or delete held keys, arm lock-delay."""
        session = self._sessions.pop(session_id)
        index = self._bump()
        held = [e for e in self._kv.values() if e.session == session_id]
        for entry in held:
            if session.lock_delay:
                self._lock_delays[entry.key] = time.monotonic() + session.lock_delay
            if session.behavior == "delete":
                del self._kv[entry.key]
                self._tombstones[entry.key] = index
            else:
                entry.session = None
                entry.modify_index = index
        if held:
            self._kv_table_index = index
        self._lock.notify_all()

    def _reap_forever(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                for session in list(self._sessions.values()):
                    if session.expires_at is not None and session.expires_at <= now:
                        self._invalidate(session.id)
                for check in self._checks.values():
                    if check.ttl_deadline is not None and check.ttl_deadline <= now:
                        check.ttl_deadline = None
                        if check.status != "critical":
                            check.status = "critical"
                            check.output = "TTL expired"
                            check.modify_index = self._checks_index = self._bump()
                            self._lock.notify_all()
                self._lock.wait(0.05)

    # -- agent services and checks --------------------------------------------------

    def _service_register(self, body: bytes, query: dict[str, list[str]]) -> tuple[int, Any]:
        try:
            spec = json.loads(body or b"{}")
        except ValueError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from exc
        name = _ci(spec, "Name")
        if not name:
            raise ConsulError(400, "Invalid Service Meta: Missing service name")
        service_id = _ci(spec, "ID") or name
        meta = _ci(spec, "Meta") or {}
        if len(meta) > 64:
            raise ConsulError(
                400,
                "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs",
            )
        for key, value in meta.items():
            if key.startswith("consul-"):
                raise ConsulError(
                    400,
                    f"Invalid Service Meta: Key prefix 'consul-' is reserved ({key})",
                )
            if len(key) > 128 or len(str(value)) > 512:
                raise ConsulError(400, f"Invalid Service Meta: Key or value too long ({key})")
            if not isinstance(value, str):
                raise ConsulError(400, "Request decode failed: Meta values must be strings")
        weights = _ci(spec, "Weights") or {"Passing": 1, "Warning": 1}
        passing = int(_ci(weights, "Passing", 1))
        if passing < 1:
            raise ConsulError(400, "Passing must be greater than 0")
        definition = {
            "ID": service_id,
            "Service": name,
            "Tags": list(_ci(spec, "Tags") or []),
            "Address": _ci(spec, "Address") or "",
            "Meta": dict(meta),
            "Port": int(_ci(spec, "Port") or 0),
            "Weights": {"Passing": passing, "Warning": int(_ci(weights, "Warning", 1))},
        }
        checks: list[dict[str, Any]] = []
        single = _ci(spec, "Check")
        if single:
            checks.append(single)
        checks.extend(_ci(spec, "Checks") or [])
        parsed = [
            self._parse_check(c, service_id, name, n, len(checks)) for n, c in enumerate(checks)
        ]
        with self._lock:
            existing = self._services.get(service_id)
            new_ids = [c.check_id for c in parsed]
            old_ids = existing.check_ids if existing else []
            replace = "replace-existing-checks" in query
            same_checks = all(
                cid in self._checks and self._checks[cid].definition == c.definition
                for cid, c in zip(new_ids, parsed, strict=True)
            ) and (not replace or set(old_ids) == set(new_ids))
            if existing is not None and existing.definition == definition and same_checks:
                # Anti-entropy finds the catalog in sync: nothing is written.
                return 200, None
            index = self._bump()
            if existing is None or existing.definition != definition:
                self._services[service_id] = _Service(
                    definition,
                    existing.create_index if existing else index,
                    index,
                    list(new_ids if replace else dict.fromkeys([*old_ids, *new_ids])),
                )
                self._services_index = index
            else:
                existing.check_ids = list(
                    new_ids if replace else dict.fromkeys([*old_ids, *new_ids])
                )
            if replace:
                for cid in old_ids:
                    if cid not in new_ids:
                        self._checks.pop(cid, None)
            for check in parsed:
                old = self._checks.get(check.check_id)
                if old is not None and old.definition == check.definition:
                    continue
                check.create_index = check.modify_index = index
                self._checks[check.check_id] = check
            if parsed or replace:
                self._checks_index = index
            self._lock.notify_all()
            return 200, None

    def _parse_check(
        self, spec: dict[str, Any], service_id: str, service_name: str, n: int, total: int
    ) -> _Check:
        kinds = [k for k in ("HTTP", "TCP", "TTL", "GRPC", "Args", "H2PING", "UDP") if _ci(spec, k)]
        if len(kinds) != 1:
            raise ConsulError(400, "Invalid check: exactly one of HTTP, TCP, TTL... must be set")
        kind = kinds[0]
        interval = _duration(_ci(spec, "Interval", ""), field_name="Interval")
        if kind != "TTL" and interval <= 0:
            raise ConsulError(
                400, "Interval must be > 0 for Script, HTTP, H2PING, TCP or UDP checks"
            )
        definition: dict[str, Any] = {kind: _ci(spec, kind)}
        for name in ("Interval", "Timeout", "Method", "DeregisterCriticalServiceAfter"):
            value = _ci(spec, name)
            if value:
                _duration(value, field_name=name) if name != "Method" else None
                definition[name] = value
        check_id = _ci(spec, "CheckID") or (
            f"service:{service_id}" if total == 1 else f"service:{service_id}:{n + 1}"
        )
        ttl = _duration(_ci(spec, "TTL"), field_name="TTL") if kind == "TTL" else None
        return _Check(
            check_id=check_id,
            name=_ci(spec, "Name") or f"Service '{service_name}' check",
            status=_ci(spec, "Status") or "critical",
            service_id=service_id,
            service_name=service_name,
            type=kind.lower(),
            definition=definition,
            create_index=0,
            modify_index=0,
            ttl=ttl,
            # Consul starts a TTL check's timer when the check is registered.
            ttl_deadline=time.monotonic() + ttl if ttl else None,
        )

    def _service_deregister(self, service_id: str) -> tuple[int, Any]:
        with self._lock:
            existing = self._services.pop(service_id, None)
            if existing is None:
                raise ConsulError(
                    404,
                    f'Unknown service ID "{service_id}". Ensure that the service ID is passed, '
                    "not the service name.",
                )
            index = self._bump()
            self._services_index = index
            for cid in existing.check_ids:
                if self._checks.pop(cid, None) is not None:
                    self._checks_index = index
            self._lock.notify_all()
            return 200, None

    def _agent_service(self, service_id: str) -> tuple[int, Any]:
        with self._lock:
            existing = self._services.get(service_id)
            if existing is None:
                raise ConsulError(404, f"unknown service ID: {service_id}")
            out = dict(existing.catalog_json())
            out.pop("CreateIndex")
            out.pop("ModifyIndex")
            out["Datacenter"] = DATACENTER
            out["ContentHash"] = f"{abs(hash(json.dumps(out, sort_keys=True))):016x}"
            return 200, out

    def _agent_checks(self) -> tuple[int, Any]:
        # The agent's own view: its service checks (not the node's serfHealth), keyed by
        # CheckID; the agent does not know raft indexes, so they read 0.
        with self._lock:
            return 200, {
                cid: {**check.to_json(), "CreateIndex": 0, "ModifyIndex": 0}
                for cid, check in self._checks.items()
                if check.service_id
            }

    def _check_update(
        self, action: str, check_id: str, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        statuses = {"pass": "passing", "warn": "warning", "fail": "critical"}
        if action not in statuses:
            raise ConsulError(404, f"no fake for /v1/agent/check/{action}")
        with self._lock:
            check = self._checks.get(check_id)
            if check is None or check.type != "ttl":
                raise ConsulError(404, f'Unknown check ID "{check_id}"')
            note = query.get("note", [""])[0]
            if check.ttl:
                check.ttl_deadline = time.monotonic() + check.ttl
        self.set_check(check_id, statuses[action], note)
        return 200, None

    # -- catalog and health reads ---------------------------------------------------

    def _catalog_services(self) -> tuple[int, int, Any]:
        names: dict[str, list[str]] = {"consul": []}
        for svc in self._services.values():
            tags = names.setdefault(svc.definition["Service"], [])
            tags.extend(t for t in svc.definition["Tags"] if t not in tags)
        return self._services_index, 200, names

    def _health_state_any(self) -> tuple[int, int, Any]:
        return self._checks_index, 200, [c.to_json() for c in self._checks.values()]

    def _health_service(self, name: str) -> tuple[int, int, Any]:
        node = {
            "ID": "5e5a5b14-0000-4000-8000-000000000001",
            "Node": NODE,
            "Address": NODE_ADDRESS,
            "Datacenter": DATACENTER,
            "TaggedAddresses": {"lan": NODE_ADDRESS, "wan": NODE_ADDRESS},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 5,
            "ModifyIndex": 5,
        }
        out = []
        for svc in sorted(self._services.values(), key=lambda s: s.definition["ID"]):
            if svc.definition["Service"] != name:
                continue
            checks = [self._checks["serfHealth"].to_json()] + [
                self._checks[cid].to_json() for cid in svc.check_ids if cid in self._checks
            ]
            out.append({"Node": node, "Service": svc.catalog_json(), "Checks": checks})
        index = max(self._services_index, self._checks_index)
        return index, 200, out


_READ_VERBS = {"get", "check-index", "check-not-exists", "check-session", "get-tree"}


class _TxnFailure(Exception):
    def __init__(self, op_index: int, what: str) -> None:
        super().__init__(what)
        self.op_index = op_index
        self.what = what
