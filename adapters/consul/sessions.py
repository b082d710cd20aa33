"""Hub leases as Consul sessions: grant, keep-alive, revoke, and the reaper of expired ones."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import consul
from consul.callback import CB

from adapters.base import CATALOG_PREFIX, Lease
from adapters.consul.client import INTERNAL_DIR, ConsulClient, lease_id_for
from shared.errors import BackendUnavailable, HubError, InvalidRequest, LeaseNotFound

MIN_SESSION_TTL = 10
MAX_SESSION_TTL = 86_400


class ConsulSessions(ConsulClient):
    """Leases: a Consul session each, with a record of its TTL and deadline."""

    def _lease_key(self, lease_id: int) -> str:
        return self._full(f"{INTERNAL_DIR}leases/{lease_id}")

    async def grant_lease(self, ttl: int) -> Lease:
        if ttl < 1:
            raise InvalidRequest("a lease TTL must be at least 1 second")
        if ttl > MAX_SESSION_TTL:
            raise InvalidRequest(f"a lease TTL must be at most {MAX_SESSION_TTL} seconds")
        lease_id, session, deadline = await self._run(self._grant_sync, ttl)
        self._lease_sessions[lease_id] = session
        self._lease_deadlines[lease_id] = (session, ttl, deadline)
        return Lease(id=lease_id, ttl=ttl)

    def _grant_sync(self, ttl: int) -> tuple[int, str, float]:
        body = {
            "Name": "central-hub lease",
            # Consul's own expiry is the safety net for when no hub replica runs; it takes
            # 10s at least and may take twice the TTL, so the hub enforces `ttl` itself.
            "TTL": f"{min(max(ttl, MIN_SESSION_TTL), MAX_SESSION_TTL)}s",
            "Behavior": "delete",
            # Consul's default 15s lock delay would block re-binding a key for 15s after
            # its lease ends; the hub relies on revisions, not lock delay, for safety.
            "LockDelay": "0s",
        }

        def create(c: consul.Consul) -> str:
            session: str = c.http.put(
                CB.json(is_id=True),
                "/v1/session/create",
                params=self._params(),
                data=json.dumps(body),
                headers=c.prepare_headers(),
            )
            return session

        session = self._call(create)
        lease_id = lease_id_for(session)
        deadline = time.time() + ttl
        if not self._write_lease_record(lease_id, session, ttl, deadline):
            raise BackendUnavailable(f"Consul refused to record lease {lease_id}")
        return lease_id, session, deadline

    def _write_lease_record(self, lease_id: int, session: str, ttl: int, deadline: float) -> bool:
        """Write the lease's record, held by its own session; False if the session is gone."""
        record = json.dumps({"session": session, "ttl": ttl, "deadline": deadline}).encode()
        committed, _, _ = self._txn(
            [
                {
                    "KV": {
                        "Verb": "lock",
                        "Key": self._lease_key(lease_id),
                        "Value": base64.b64encode(record).decode(),
                        "Session": session,
                    }
                }
            ]
        )
        return committed

    async def _lease_of(self, lease_id: int) -> tuple[str, int, float]:
        """(session, ttl, deadline) of a live lease; LeaseNotFound otherwise."""

        def lookup(c: consul.Consul) -> tuple[str, int, float] | None:
            _, entry = c.kv.get(self._lease_key(lease_id))
            value = entry.get("Value") if entry else None
            return parse_lease_record(bytes(value)) if value else None

        found = await self._run(self._call, lookup)
        if found is None:
            self._lease_sessions.pop(lease_id, None)
            raise LeaseNotFound(f"lease {lease_id} does not exist or has expired")
        self._lease_sessions[lease_id] = found[0]
        return found

    async def _session_of(self, lease_id: int) -> str:
        session = self._lease_sessions.get(lease_id)
        if session is not None:
            return session
        return (await self._lease_of(lease_id))[0]

    async def keep_alive(self, lease_id: int) -> int:
        session, ttl, deadline = await self._lease_of(lease_id)
        if deadline <= time.time():
            # Past its deadline but not reaped yet: it has expired all the same.
            await self._end_session(session)
            raise LeaseNotFound(f"lease {lease_id} has expired")

        def renew(c: consul.Consul) -> bool:
            answer = c.http.put(
                CB.json(),  # 404 (the session is gone) reads as None
                f"/v1/session/renew/{session}",
                params=self._params(),
                headers=c.prepare_headers(),
            )
            return bool(answer)

        new_deadline = time.time() + ttl
        if not await self._run(self._call, renew) or not await self._run(
            self._write_lease_record, lease_id, session, ttl, new_deadline
        ):
            self._lease_sessions.pop(lease_id, None)
            raise LeaseNotFound(f"lease {lease_id} does not exist or has expired")
        self._lease_deadlines[lease_id] = (session, ttl, new_deadline)
        await self._pass_ttl_checks(lease_id)
        return ttl

    async def _pass_ttl_checks(self, lease_id: int) -> None:
        """Pass the Consul TTL check of every instance bound to ``lease_id``.

        On the other backends a heartbeat (this keep-alive) is what keeps a TTL-checked
        instance healthy; Consul turns a TTL check critical one TTL after its last pass, so
        the heartbeat must pass it too. Its check id is Consul's default for a service's
        single check, ``service:<id>``.
        """
        instance_ids = []
        for key, kv in self._catalog_state.items():
            if not key.startswith(CATALOG_PREFIX) or kv.lease != lease_id:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(kv.value)
                if (record.get("check") or {}).get("kind") == "ttl":
                    instance_ids.append(str(record["instance_id"]))
        for instance_id in instance_ids:

            def check_pass(c: consul.Consul, check_id: str = f"service:{instance_id}") -> None:
                # 404: registered through another agent, whose heartbeats pass it there.
                c.http.put(
                    lambda response: response,
                    f"/v1/agent/check/pass/{check_id}",
                    params=[("note", "central-hub heartbeat")],
                    headers=c.prepare_headers(),
                )

            with contextlib.suppress(HubError):
                await self._run(self._call, check_pass)

    async def revoke_lease(self, lease_id: int) -> None:
        try:
            session = await self._session_of(lease_id)
        except LeaseNotFound:
            return
        self._lease_sessions.pop(lease_id, None)
        self._lease_deadlines.pop(lease_id, None)
        await self._end_session(session)
        # Return once the feed has seen the session's keys go, like a local revoke would.
        await self._wait_for(
            lambda: not any(kv.lease == lease_id for kv in self._kv_state.values())
        )

    async def _end_session(self, session: str) -> None:
        await self._run(self._call, lambda c: c.session.destroy(session, dc=self.datacenter))

    async def _reap_leases(self) -> None:
        """End leases past their deadline (every replica does it; destroy is idempotent)."""
        while not self._closed:
            await asyncio.sleep(self.reap_interval)
            now = time.time()
            expired = [
                (lease_id, session)
                for lease_id, (session, _, deadline) in self._lease_deadlines.items()
                # The grace lets a keep-alive by another replica reach this one's feed.
                if deadline + self.reap_grace <= now
            ]
            for lease_id, session in expired:
                self._lease_deadlines.pop(lease_id, None)
                self._lease_sessions.pop(lease_id, None)
                with contextlib.suppress(HubError):
                    await self._end_session(session)


def record_lease(value: bytes) -> int | None:
    """The lease id an instance record (JSON) is bound to, or ``None``."""
    try:
        lease = json.loads(value).get("lease")
    except (ValueError, AttributeError):
        return None
    return int(lease) if isinstance(lease, int) else None


def parse_lease_record(value: bytes) -> tuple[str, int, float] | None:
    """(session, ttl, deadline) of a lease record under ``.consul/leases/``, or ``None``."""
    try:
        record = json.loads(value)
        return str(record["session"]), int(record["ttl"]), float(record["deadline"])
    except (ValueError, KeyError, TypeError):
        return None
