"""The hub's keys in Consul's KV store: reads, compare-and-set writes, deletes, audit batches."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import consul

from adapters.base import CATALOG_PREFIX, KeyValue, Put, Snapshot, check_puts, check_revision
from adapters.consul.client import INTERNAL_DIR
from adapters.consul.sessions import ConsulSessions
from shared.errors import (
    BackendTimeout,
    BackendUnavailable,
    InvalidRequest,
    LeaseNotFound,
    RevisionConflict,
)

log = logging.getLogger("central_hub.consul")


class ConsulKV(ConsulSessions):
    """KV reads and writes under the backend's prefix (``/v1/txn`` compare-and-set)."""

    async def current_revision(self) -> int:
        def index(c: consul.Consul) -> int:
            raw_index, _ = c.kv.get(self.kv_prefix, recurse=True, keys=True)
            return int(raw_index)

        kv_index = await self._run(self._call, index)
        # Consul's prefix index can drop when tombstones are reaped; never go backwards.
        return max(kv_index, self._catalog_index, self._journal.head)

    async def get(self, key: str) -> KeyValue | None:
        if self._is_virtual(key) and key in self._catalog_state:
            return self._catalog_state[key]
        if self._is_internal(key):
            return None

        def get_one(c: consul.Consul) -> KeyValue | None:
            _, entry = c.kv.get(self._full(key))
            return self._entry_to_kv(entry) if entry else None

        return await self._run(self._call, get_one)

    async def range(self, prefix: str) -> Snapshot:
        # The revision is taken first: items may be newer than it (a watch from it replays
        # them, harmlessly), never older (which would lose changes).
        revision = await self.current_revision()
        _, items = await self._run(self._kv_list, self._full(prefix), None)
        merged = {kv.key: kv for kv in items if not self._is_internal(kv.key)}
        for key, kv in self._catalog_state.items():
            if key.startswith(prefix):
                merged[key] = kv
        return Snapshot(items=[merged[k] for k in sorted(merged)], revision=revision)

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        lease: int | None = None,
        if_revision: int | None = None,
    ) -> int:
        if key.startswith(CATALOG_PREFIX):
            # Catalog keys are Consul services (e.g. `central-hub migrate` copying state).
            service, _, instance_id = key[len(CATALOG_PREFIX) :].partition("/")
            return await self.put_instance(service, instance_id, value, lease=lease)
        if self._is_internal(key):
            raise InvalidRequest(f"keys under {INTERNAL_DIR!r} are reserved by the backend")
        session = await self._session_of(lease) if lease is not None else None
        rev = await self._run(self._put_sync, key, bytes(value), session, lease, if_revision)
        await self._wait_for(lambda: self._kv_index >= rev)
        return rev

    def _put_sync(
        self,
        key: str,
        value: bytes,
        session: str | None,
        lease: int | None,
        if_revision: int | None,
    ) -> int:
        full = self._full(key)
        encoded = base64.b64encode(value).decode()
        for _ in range(32):  # bounded retries when another writer races an unconditional put
            _, entry = self._call(lambda c: c.kv.get(full))
            actual = int(entry["ModifyIndex"]) if entry else 0
            check_revision(key, actual, if_revision)
            version = max(1, int(entry.get("Flags") or 0)) + 1 if entry else 1
            ops: list[dict[str, Any]] = [
                {"KV": {"Verb": "check-index", "Key": full, "Index": actual}}
                if entry
                else {"KV": {"Verb": "check-not-exists", "Key": full}}
            ]
            held = entry.get("Session") if entry else None
            if held and held != session:
                # Detach the key from its old session first, so revoking that lease later
                # does not delete the new value.
                ops.append(
                    {
                        "KV": {
                            "Verb": "unlock",
                            "Key": full,
                            "Value": encoded,
                            "Flags": version,
                            "Session": held,
                        }
                    }
                )
            write: dict[str, Any] = {"Key": full, "Value": encoded, "Flags": version}
            if session:
                write.update(Verb="lock", Session=session)
            else:
                write["Verb"] = "set"
            ops.append({"KV": write})
            committed, results, errors = self._txn(ops)
            if committed:
                return max(
                    int(r["KV"]["ModifyIndex"])
                    for r in results
                    if r.get("KV") and r["KV"].get("Key") == full
                )
            failed = {int(e.get("OpIndex", -1)) for e in errors}
            if 0 in failed:
                if if_revision is not None:
                    raise RevisionConflict(
                        f"key {key!r} changed concurrently",
                        details={"key": key, "expected_revision": if_revision},
                    )
                continue
            if session and len(ops) - 1 in failed:
                raise LeaseNotFound(f"lease {lease} does not exist or has expired")
            raise BackendUnavailable(f"Consul rolled back the write of {key!r}: {errors}")
        raise BackendTimeout(f"key {key!r} kept changing; the write gave up")

    async def put_all(self, puts: Sequence[Put]) -> int:
        check_puts(puts)
        if any(self._is_internal(p.key) for p in puts):
            raise InvalidRequest(f"keys under {INTERNAL_DIR!r} are reserved by the backend")
        rev = await self._run(self._put_all_sync, list(puts))
        await self._wait_for(lambda: self._kv_index >= rev)
        return rev

    def _put_all_sync(self, puts: list[Put]) -> int:
        for _ in range(32):  # bounded retries when another writer races an unconditional put
            ops: list[dict[str, Any]] = []
            for put in puts:
                full = self._full(put.key)
                _, entry = self._call(partial(_kv_get, full))
                actual = int(entry["ModifyIndex"]) if entry else 0
                check_revision(put.key, actual, put.if_revision)
                version = max(1, int(entry.get("Flags") or 0)) + 1 if entry else 1
                ops.append(
                    {"KV": {"Verb": "check-index", "Key": full, "Index": actual}}
                    if entry
                    else {"KV": {"Verb": "check-not-exists", "Key": full}}
                )
                value = base64.b64encode(bytes(put.value)).decode()
                ops.append({"KV": {"Verb": "set", "Key": full, "Value": value, "Flags": version}})
            committed, results, errors = self._txn(ops)
            if committed:
                return max(int(r["KV"]["ModifyIndex"]) for r in results if r.get("KV"))
            failed = {int(e.get("OpIndex", -1)) for e in errors}
            if not failed or any(i < 0 or i % 2 for i in failed):  # not only the checks
                raise BackendUnavailable(f"Consul rolled back the transaction: {errors}")
            if any(p.if_revision is not None for p in puts):
                raise RevisionConflict(
                    "a key of the transaction changed concurrently",
                    details={"keys": [p.key for p in puts]},
                )
            log.debug("put_all raced another writer: %s", errors)
        raise BackendTimeout("the keys kept changing; the transaction gave up")

    async def delete(self, key: str, *, if_revision: int | None = None) -> int | None:
        if if_revision == 0:
            raise InvalidRequest("a delete cannot require the key to be absent")
        if key.startswith(CATALOG_PREFIX):
            service, _, instance_id = key[len(CATALOG_PREFIX) :].partition("/")
            return await self.delete_instance(service, instance_id)
        if self._is_internal(key):
            return None
        old = await self._run(self._delete_sync, key, if_revision)
        if old is None:
            return None
        return await self._deleted_revision(key, old, lambda: self._kv_state)

    def _delete_sync(self, key: str, if_revision: int | None) -> int | None:
        """Delete ``key``; return the ModifyIndex it had, or None if it was absent."""
        full = self._full(key)
        for _ in range(32):
            _, entry = self._call(lambda c: c.kv.get(full))
            actual = int(entry["ModifyIndex"]) if entry else 0
            check_revision(key, actual, if_revision)
            if entry is None:
                return None
            committed, _, errors = self._txn(
                [{"KV": {"Verb": "delete-cas", "Key": full, "Index": actual}}]
            )
            if committed:
                return actual
            if if_revision is not None:
                raise RevisionConflict(
                    f"key {key!r} changed concurrently",
                    details={"key": key, "expected_revision": if_revision},
                )
            log.debug("delete of %s raced another writer: %s", key, errors)
        raise BackendTimeout(f"key {key!r} kept changing; the delete gave up")

    async def compact(self, revision: int) -> None:
        """Forget the in-memory watch history before ``revision`` (Consul keeps none)."""
        self._journal.trim_below(revision)

    # -- audit batches (beside the KV prefix, so the feed never reads them) ----------

    @property
    def audit_prefix(self) -> str:
        """Where audit batches live: ``hub/`` keeps them in ``hub.audit/``."""
        return self.kv_prefix[:-1] + ".audit/"

    async def _audit_put(self, name: str, lines: list[bytes]) -> None:
        value = base64.b64encode(b"\n".join(lines)).decode()
        op = {"KV": {"Verb": "set", "Key": self.audit_prefix + name, "Value": value}}
        committed, _, errors = await self._run(self._txn, [op])
        if not committed:
            raise BackendUnavailable(f"Consul refused an audit batch: {errors}")

    async def _audit_names(self) -> list[str]:
        def list_names(c: consul.Consul) -> list[str]:
            _, keys = c.kv.get(self.audit_prefix, keys=True)
            return [str(k)[len(self.audit_prefix) :] for k in keys or []]

        return await self._run(self._call, list_names)

    async def _audit_get(self, name: str) -> bytes | None:
        def get_one(c: consul.Consul) -> bytes | None:
            _, entry = c.kv.get(self.audit_prefix + name)
            return bytes(entry["Value"] or b"") if entry else None

        return await self._run(self._call, get_one)

    async def _audit_delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 64):  # Consul's limit of operations per txn
            ops = [
                {"KV": {"Verb": "delete", "Key": self.audit_prefix + name}}
                for name in names[start : start + 64]
            ]
            await self._run(self._txn, ops)


def _kv_get(key: str, c: consul.Consul) -> tuple[Any, Any]:
    return c.kv.get(key)
