"""System-wide backups: the hub calls every service that declared a backup endpoint.

A run (``POST /coordination/backups``) gets one id and one epoch (a counter that only
grows). It is stored under ``coordination/backups/<id>`` with every service's status, and
executed by the replica elected for the ``backup-coordinator`` role:

* services are taken from the catalog: one instance per service that declared
  ``backup`` at registration (a healthy one if there is one);
* dependency order: a service is called once every service in its ``depends_on`` that
  takes part has succeeded; independent services run in parallel; a dependency that
  failed (or was skipped) skips its dependents; a cycle fails the services in it;
* each call is ``POST http://<host>:<port><endpoint>`` with
  ``{"backup_id", "epoch", "service"}``, bounded by the service's ``timeout_seconds``;
  a 2xx answer with JSON ``{"location": ...}`` succeeds, anything else fails with the
  reason;
* the run ends ``succeeded`` only if every service succeeded, else ``partial`` (with the
  reasons per service), never ``succeeded`` with a failure in it.

Leader change: the record is rewritten after every step, so a new leader finds the run
still ``running`` and resumes it: services that succeeded are kept, services that were
in flight are called again (the same ``backup_id`` and ``epoch``, so a service can tell
a repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import httpx
import orjson

from adapters import Backend, EventType, KeyValue, WatchEvent
from facade.state.catalog import CatalogIndex, Instance
from facade.state.leader_election import LeaderElection
from facade.tasks import cancel_and_wait
from shared.errors import BackendTimeout, HubError, NotFound, RevisionConflict
from shared.timestamps import utc_now

log = logging.getLogger("central_hub.system_backups")

RUNS_PREFIX = "coordination/backups/runs/"
EPOCH_KEY = "coordination/backups/epoch"
ACTIVE = ("requested", "running")


def _is_active(value: bytes) -> bool:
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and record.get("state") in ACTIVE


def run_key(run_id: str) -> str:
    """The key of one run's record."""
    return f"{RUNS_PREFIX}{run_id}"


def new_run_id() -> str:
    """Sortable by time (newest last), unique across replicas."""
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


class SystemBackups:
    """Starts runs (any replica) and executes them (the elected replica only)."""

    def __init__(
        self,
        backend: Backend,
        catalog: CatalogIndex,
        *,
        poll_interval: float = 0.5,
        leader_ttl: int = 10,
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.poll_interval = poll_interval
        self.election = LeaderElection(
            backend,
            "backup-coordinator",
            ttl=leader_ttl,
            on_elected=self._elected,
            on_demoted=self._demoted,
        )
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        # Replicas campaign only while the view shows an active run: no lease, no key and
        # no backend reads at all between runs.
        self.active: set[str] = set()
        self._active_changed = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._campaigning = False

    # -- any replica ------------------------------------------------------------------

    async def start_run(self, requested_by: str) -> dict[str, Any]:
        """Record a new run (state ``requested``); the elected replica executes it."""
        epoch = await self._next_epoch()
        run_id = new_run_id()
        record = {
            "id": run_id,
            "epoch": epoch,
            "state": "requested",
            "requested_by": requested_by,
            "requested_at": utc_now(),
            "started_at": None,
            "finished_at": None,
            "services": {},
            "executed_by": [],
        }
        await self.backend.put(run_key(run_id), orjson.dumps(record), if_revision=0)
        return record

    async def _next_epoch(self) -> int:
        for _ in range(50):
            kv = await self.backend.get(EPOCH_KEY)
            epoch = int(orjson.loads(kv.value)) + 1 if kv else 1
            try:
                await self.backend.put(
                    EPOCH_KEY, orjson.dumps(epoch), if_revision=kv.mod_revision if kv else 0
                )
            except RevisionConflict:
                continue
            return epoch
        raise BackendTimeout("too many concurrent backup runs; try again")

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """One run's record (NotFound if there is none)."""
        kv = await self.backend.get(run_key(run_id))
        if kv is None:
            raise NotFound(f"no system backup run {run_id!r}", details={"backup_id": run_id})
        record: dict[str, Any] = orjson.loads(kv.value)
        return record

    async def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Runs, newest first."""
        items = (await self.backend.range(RUNS_PREFIX)).items
        runs = [orjson.loads(kv.value) for kv in reversed(items)]
        return runs[:limit]

    # -- the elected replica --------------------------------------------------------

    # -- view listener on RUNS_PREFIX: which runs are active --------------------------

    def reset(self, items: dict[str, KeyValue]) -> None:
        """View resync: the active runs, from scratch."""
        self.active = {key for key, kv in items.items() if _is_active(kv.value)}
        self._active_changed.set()

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """A run was written or removed."""
        if event.type is EventType.PUT and _is_active(event.value or b""):
            self.active.add(event.key)
        else:
            self.active.discard(event.key)
        self._active_changed.set()

    async def start(self) -> None:
        """Watch for active runs; campaign for the coordinator role while there are any."""
        self._supervisor = asyncio.create_task(self._supervise(), name="system-backups-watch")

    async def stop(self) -> None:
        """Stop executing and release the role."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._campaigning:
            self._campaigning = False
            await self.election.stop()
        await self._demoted()

    async def _supervise(self) -> None:
        while True:
            await self._active_changed.wait()
            self._active_changed.clear()
            if self.active and not self._campaigning:
                self._campaigning = True
                await self.election.start()
            elif not self.active and self._campaigning:
                self._campaigning = False
                await self.election.stop()  # the leader releases the role at once

    async def _elected(self) -> None:
        self._client = httpx.AsyncClient()
        self._task = asyncio.create_task(self._loop(), name="system-backups")

    async def _demoted(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                for kv in (await self.backend.range(RUNS_PREFIX)).items:
                    record = orjson.loads(kv.value)
                    if record.get("state") in ACTIVE:
                        await self.execute(record)
            except HubError as exc:
                log.warning("system backup coordinator: %s", exc)
            except Exception:  # a malformed record must not end the coordinator
                log.exception("system backup coordinator failed; retrying")
            await asyncio.sleep(self.poll_interval)

    def _participants(self) -> dict[str, Instance]:
        """One instance per service that declared a backup (healthy ones first)."""
        chosen: dict[str, Instance] = {}
        for service, state in sorted(self.catalog.services.items()):
            instances = [i for i in state.instances.values() if i.backup is not None]
            if not instances:
                continue
            instances.sort(
                key=lambda i: (state.status_of(i.instance_id) != "healthy", i.instance_id)
            )
            chosen[service] = instances[0]
        return chosen

    def _plan(self) -> dict[str, dict[str, Any]]:
        """One pending entry per participating service, with its endpoint and deadline."""
        participants = self._participants()
        plan: dict[str, dict[str, Any]] = {}
        for name, inst in sorted(participants.items()):
            backup = inst.backup or {}
            plan[name] = {
                "status": "pending",
                "instance_id": inst.instance_id,
                "url": inst.url + str(backup.get("endpoint") or "/backup"),
                "depends_on": [d for d in backup.get("depends_on") or [] if d in participants],
                "timeout_seconds": float(backup.get("timeout_seconds") or 300),
                "location": None,
                "reason": None,
                "started_at": None,
                "finished_at": None,
            }
        return plan

    async def execute(self, record: dict[str, Any]) -> dict[str, Any]:
        """Run (or resume) one run to its end; return the final record."""
        services: dict[str, dict[str, Any]] = record["services"]
        if record["state"] == "requested":
            services.update(self._plan())
            record["state"] = "running"
            record["started_at"] = utc_now()
        record["executed_by"] = [*record.get("executed_by", []), self.election.identity]
        for entry in services.values():
            if entry["status"] == "running":  # in flight when the last leader stopped
                entry["status"] = "pending"
        lock = asyncio.Lock()

        async def save() -> None:
            async with lock:
                await self.backend.put(run_key(record["id"]), orjson.dumps(record))

        await save()
        done = {name: asyncio.Event() for name in services}
        for name, entry in services.items():
            if entry["status"] != "pending":
                done[name].set()
        _fail_cycles(services, done)

        async def one(name: str) -> None:
            entry = services[name]
            if entry["status"] != "pending":
                return
            for dep in entry["depends_on"]:
                await done[dep].wait()
            failed = [d for d in entry["depends_on"] if services[d]["status"] != "succeeded"]
            if failed:
                entry.update(status="skipped", reason=f"dependency did not succeed: {failed}")
            else:
                entry.update(status="running", started_at=utc_now())
                await save()
                await self._call(record, name, entry)
            entry["finished_at"] = utc_now()
            await save()
            done[name].set()

        await asyncio.gather(*(one(name) for name in services))
        ok = all(e["status"] == "succeeded" for e in services.values())
        record["state"] = "succeeded" if ok else "partial"
        if not ok:
            record["reason"] = "; ".join(
                f"{name}: {e['reason']}" for name, e in sorted(services.items()) if e["reason"]
            )
        record["finished_at"] = utc_now()
        await save()
        return record

    async def _call(self, record: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
        client = self._client or httpx.AsyncClient()
        body = {"backup_id": record["id"], "epoch": record["epoch"], "service": name}
        try:
            resp = await client.post(entry["url"], json=body, timeout=entry["timeout_seconds"])
        except httpx.TimeoutException:
            entry.update(status="failed", reason=f"no answer within {entry['timeout_seconds']:g}s")
            return
        except httpx.HTTPError as exc:
            entry.update(status="failed", reason=f"unreachable: {exc!s}"[:300])
            return
        finally:
            if client is not self._client:
                await client.aclose()
        if not 200 <= resp.status_code < 300:
            entry.update(status="failed", reason=f"answered {resp.status_code}")
            return
        try:
            answer = resp.json()
        except ValueError:
            answer = {}
        location = answer.get("location") if isinstance(answer, dict) else None
        entry.update(status="succeeded", location=location)


def _fail_cycles(services: dict[str, dict[str, Any]], done: dict[str, asyncio.Event]) -> None:
    """Mark services in a dependency cycle failed (they could never start)."""
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :]
            for member in cycle:
                entry = services[member]
                if entry["status"] == "pending":
                    entry.update(status="failed", reason=f"dependency cycle: {' -> '.join(cycle)}")
                    done[member].set()
            return
        state[name] = 1
        for dep in services[name]["depends_on"]:
            visit(dep, [*path, name])
        state[name] = 2

    for name in services:
        visit(name, [])
