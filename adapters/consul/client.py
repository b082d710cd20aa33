"""The Consul backend's connection: settings, per-thread py-consul clients, requests and errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import consul
import requests
from consul.callback import CB

from adapters.base import CATALOG_PREFIX, HEALTH_PREFIX, Backend, KeyValue
from adapters.consul.journal import Journal
from shared.errors import (
    BackendPermissionDenied,
    BackendTimeout,
    BackendUnavailable,
    HubError,
    InvalidRequest,
    NoQuorum,
)

T = TypeVar("T")


INTERNAL_DIR = ".consul/"
"""Reserved subtree of the KV prefix for the backend's own keys; never shown to the hub."""


def lease_id_for(session_id: str) -> int:
    """The hub's lease id for a Consul session: 60 bits of its UUID (fits orjson's int64)."""
    return int(uuid.UUID(session_id).hex[:15], 16)


class ConsulClient(Backend):
    """The connection to one Consul agent and the state its feeds keep.

    The base of the backend's parts (:mod:`.sessions`, :mod:`.kv`, :mod:`.catalog`,
    :mod:`.feed`), which :class:`~adapters.consul.backend.ConsulBackend` combines.
    """

    def __init__(
        self,
        address: str = "http://127.0.0.1:8500",
        *,
        token: str | None = None,
        datacenter: str | None = None,
        kv_prefix: str = "hub/",
        blocking_wait: str = "5s",
        request_timeout: float = 10.0,
        write_visibility_timeout: float = 10.0,
        journal_size: int = 100_000,
        progress_interval: float = 1.0,
        reap_interval: float = 0.25,
        reap_grace: float = 0.5,
        ignored_services: Iterable[str] = ("consul",),
        verify: bool | str = True,
    ) -> None:
        if "//" not in address:
            address = "http://" + address
        parts = urlsplit(address)
        if not parts.hostname:
            raise InvalidRequest(f"invalid Consul address {address!r}")
        if not kv_prefix or kv_prefix.startswith("/") or not kv_prefix.endswith("/"):
            raise InvalidRequest("kv_prefix must be non-empty, relative and end with '/'")
        self.address = address
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 8500)
        self.token = token
        self.datacenter = datacenter
        self.kv_prefix = kv_prefix
        self.blocking_wait = blocking_wait
        self.request_timeout = request_timeout
        self.write_visibility_timeout = write_visibility_timeout
        self.progress_interval = progress_interval
        self.reap_interval = reap_interval
        self.reap_grace = reap_grace
        self.ignored_services = frozenset(ignored_services)
        self.verify = verify
        self._journal_size = journal_size
        self._local = threading.local()
        self._executor: ThreadPoolExecutor | None = None
        self._feed_executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = True
        self._journal = Journal(maxlen=journal_size)
        # What the feeds last saw: hub key -> KeyValue, and the index of that answer.
        self._kv_state: dict[str, KeyValue] = {}
        self._kv_index = 0
        self._catalog_state: dict[str, KeyValue] = {}
        self._catalog_index = 0
        self._health_seen: dict[str, tuple[str, str]] = {}
        # (previous mod_revision, DELETE revision) of keys the feeds saw vanish.
        self._deleted: dict[str, tuple[int, int]] = {}
        self._catalog_dirty = asyncio.Event()
        self._lease_sessions: dict[int, str] = {}
        self._live_leases: set[int] = set()
        # lease id -> (session, ttl, deadline as epoch seconds), from the feed and our own
        # keep-alives; the reaper ends sessions past their deadline.
        self._lease_deadlines: dict[int, tuple[str, int, float]] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": f"{self.scheme}://{self.host}:{self.port}",
            "datacenter": self.datacenter,
            "kv_prefix": self.kv_prefix,
            "acl_token": self.token is not None,
        }

    # -- plumbing -------------------------------------------------------------------

    def _client(self) -> consul.Consul:
        """This thread's py-consul client (requests sessions are not shared across threads)."""
        client: consul.Consul | None = getattr(self._local, "client", None)
        if client is None:
            client = consul.Consul(
                host=self.host,
                port=self.port,
                scheme=self.scheme,
                token=self.token,
                dc=self.datacenter,
                verify=self.verify,
                connections_timeout=self.request_timeout,
            )
            # py-consul lets CONSUL_HTTP_TOKEN override the token it was given; the hub's
            # setting wins (None means: no token at all).
            client.token = self.token
            self._local.client = client
        return client

    def _call(self, fn: Callable[[consul.Consul], T]) -> T:
        try:
            return fn(self._client())
        except HubError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    async def _run(self, fn: Callable[..., T], *args: Any, feed: bool = False) -> T:
        executor = self._feed_executor if feed else self._executor
        if executor is None or self._closed:
            raise BackendUnavailable("the Consul backend is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except RuntimeError as exc:  # executor shut down by close()
            raise BackendUnavailable("the Consul backend was closed") from exc

    def _params(self) -> list[tuple[str, Any]]:
        return [("dc", self.datacenter)] if self.datacenter else []

    def _full(self, key: str) -> str:
        return self.kv_prefix + key

    @staticmethod
    def _is_internal(key: str) -> bool:
        return key.startswith(INTERNAL_DIR)

    @staticmethod
    def _is_virtual(key: str) -> bool:
        return key.startswith((CATALOG_PREFIX, HEALTH_PREFIX))

    def _entry_to_kv(self, entry: dict[str, Any]) -> KeyValue:
        value = entry.get("Value")
        session = entry.get("Session")
        return KeyValue(
            key=str(entry["Key"])[len(self.kv_prefix) :],
            value=bytes(value) if value is not None else b"",
            create_revision=int(entry["CreateIndex"]),
            mod_revision=int(entry["ModifyIndex"]),
            version=max(1, int(entry.get("Flags") or 0)),
            lease=lease_id_for(session) if session else None,
        )

    def _kv_list(self, prefix: str, index: int | None) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` (blocking when ``index`` is given) and the answer's index.

        Includes the backend's own keys under :data:`INTERNAL_DIR`; callers filter them.
        """

        def list_keys(c: consul.Consul) -> tuple[int, list[KeyValue]]:
            raw_index, entries = c.kv.get(
                prefix, recurse=True, index=index, wait=self.blocking_wait if index else None
            )
            return int(raw_index), [self._entry_to_kv(e) for e in entries or []]

        return self._call(list_keys)

    def _txn(self, ops: list[dict[str, Any]]) -> tuple[bool, list[dict[str, Any]], list[Any]]:
        """Run one transaction; (committed, results, errors). 409 = rolled back."""

        def call(c: consul.Consul) -> tuple[bool, list[dict[str, Any]], list[Any]]:
            # py-consul's Txn.put sends neither the ACL token nor dc: use its HTTP client.
            response = c.http.put(
                lambda r: r,
                "/v1/txn",
                params=self._params(),
                data=json.dumps(ops),
                headers=c.prepare_headers(),
            )
            if response.code in (200, 409):
                body = json.loads(response.body or "{}")
                return (
                    response.code == 200,
                    body.get("Results") or [],
                    body.get("Errors") or [],
                )
            CB._status(response)
            raise consul.ConsulException(f"{response.code} {response.body}")

        return self._call(call)

    async def _wait_for(self, predicate: Callable[[], bool]) -> bool:
        """Wait until a feed has seen what ``predicate`` checks; False after the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.write_visibility_timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closed:
                return False
            changed = self._journal.changes.current()
            with contextlib.suppress(TimeoutError):  # not wait_for: 3.11 can lose a cancel
                async with asyncio.timeout(min(remaining, 0.5)):
                    await changed.wait()
        return True

    async def _deleted_revision(
        self, key: str, old_mod: int, state: Callable[[], dict[str, KeyValue]]
    ) -> int:
        """The revision of a delete, as the feed reported it (so events and returns agree)."""

        def gone() -> bool:
            current = state().get(key)
            return current is None or current.mod_revision != old_mod

        await self._wait_for(gone)
        seen = self._deleted.get(key)
        if seen is not None and seen[0] == old_mod:
            return seen[1]
        return max(self._kv_index, self._catalog_index)


def _translate(exc: BaseException) -> HubError:
    """The hub error for a py-consul or requests failure."""
    text = str(exc)
    if isinstance(exc, consul.ACLPermissionDenied | consul.ACLDisabled):
        return BackendPermissionDenied(
            f"Consul refused the hub's ACL token: {text or 'permission denied'}"
        )
    if isinstance(exc, consul.Timeout | requests.Timeout):
        return BackendTimeout(f"Consul did not answer in time: {text}")
    if isinstance(exc, requests.ConnectionError):
        return BackendUnavailable(f"cannot reach the Consul agent: {text}")
    if isinstance(exc, consul.ConsulException):
        if "403" in text[:4] or "Permission denied" in text or "ACL not found" in text:
            return BackendPermissionDenied(f"Consul refused the hub's ACL token: {text}")
        if text.startswith("400"):
            return InvalidRequest(f"Consul rejected the request: {text}")
        if "No cluster leader" in text:
            return NoQuorum(f"Consul has no cluster leader: {text}")
        return BackendUnavailable(f"Consul failed: {text}")
    return BackendUnavailable(f"Consul request failed: {type(exc).__name__}: {text}")
