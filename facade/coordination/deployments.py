"""Deployment coordination: a rollout's state machine, stored in the backend.

The hub never runs containers. It decides which instances change when, marks them
draining (discovery stops offering them at once), and an executor (docs/deployments.md)
stops them and starts the target version, which registers with ``version`` = the target.
A batch is done when its old instances are gone and as many target-version instances as
were drained so far have been healthy for ``min_healthy_seconds``.

Every deployment is one key, ``coordination/deployments/<id>``, and the service's active
deployment is named by ``coordination/deployments-active/<service>`` (created only if
absent: one active deployment per service). Only the elected replica advances
deployments (:class:`DeploymentDriver`, started by a :class:`LeaderElection`); each step
is one compare-and-set transaction of the record together with the draining marks it
adds, so a replica that takes over continues from the stored state: no instance is
drained twice, none is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from adapters import Backend, KeyValue, Put, WatchEvent
from adapters.base import ChangeNotifier
from facade.circuits.breakers import CircuitBreakers
from facade.models import SERVICE_NAME_PATTERN, TENANT_ID_PATTERN
from facade.state.catalog import (
    DRAINING_PREFIX,
    ROUTING_PREFIX,
    CatalogIndex,
    ServiceState,
    draining_key,
)
from facade.state.view import StateView
from facade.tasks import cancel_and_wait
from shared.errors import (
    DeploymentActive,
    DeploymentNotFound,
    HubError,
    InvalidRequest,
    RevisionConflict,
    ServiceNotFound,
)
from shared.tenancy import minimum_tier
from shared.timestamps import iso_utc

log = logging.getLogger("central_hub.deployments")

DEPLOYMENTS_PREFIX = "coordination/deployments/"
ACTIVE_PREFIX = "coordination/deployments-active/"
ACTIVE_STATES = frozenset({"running", "paused", "canary"})
TERMINAL_STATES = frozenset({"succeeded", "failed", "aborted"})
STATES = ("running", "paused", "canary", "succeeded", "failed", "aborted")
MAX_EVENTS = 1000
"""Events kept per deployment (the oldest are dropped; SSE resumes from what is kept)."""

Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]


def deployment_key(deployment_id: str) -> str:
    """The key of one deployment record."""
    return f"{DEPLOYMENTS_PREFIX}{deployment_id}"


def routing_key(service: str) -> str:
    """The key of a service's canary routing (read by discovery through the catalog)."""
    return f"{ROUTING_PREFIX}{service}/canary"


def _deployment_of(kv: KeyValue) -> object:
    try:
        value = orjson.loads(kv.value)
    except orjson.JSONDecodeError:
        return None
    return value.get("deployment_id") if isinstance(value, dict) else None


def active_key(service: str) -> str:
    """The key naming a service's active deployment."""
    return f"{ACTIVE_PREFIX}{service}"


class DeploymentIn(BaseModel):
    """``POST /deployments``: the spec's ``coordinate_deployment`` call, plus its safety knobs."""

    model_config = ConfigDict(extra="forbid")

    service: Annotated[str, StringConstraints(pattern=SERVICE_NAME_PATTERN)]
    version: Version = Field(description="The target version (instances register with it).")
    strategy: Literal["rolling", "canary"] = Field(
        "rolling",
        description="rolling; canary: replace the first batch, then offer the new version "
        "only to `tenants` and `weight_percent` of answers until `promote`.",
    )
    weight_percent: int | None = Field(
        None, ge=1, le=100, description="Canary: share of discovery answers given the new one."
    )
    tenants: list[TenantId] = Field(
        default_factory=list, max_length=1000, description="Canary: tenants given the new one."
    )
    batch_size: int = Field(1, ge=1, le=1000, description="Old instances replaced per batch.")
    max_unavailable: int | None = Field(
        None, ge=1, le=1000, description="Most instances draining at once (default batch_size)."
    )
    min_healthy_seconds: float = Field(
        10.0, ge=0, le=3600, description="How long new instances must stay healthy."
    )
    max_failure_rate: float | None = Field(
        None, ge=0, le=1, description="Failure rate that fails a batch (default: tier circuit)."
    )
    batch_timeout_seconds: float = Field(
        600.0, ge=1, le=86400, description="A batch not done within this fails the deployment."
    )

    @model_validator(mode="after")
    def _unavailable_is_a_limit(self) -> DeploymentIn:
        if self.max_unavailable is None:
            self.max_unavailable = self.batch_size
        canary = self.weight_percent is not None or bool(self.tenants)
        if self.strategy == "canary" and not canary:
            raise ValueError("a canary needs weight_percent and/or tenants")
        if self.strategy == "rolling" and canary:
            raise ValueError("weight_percent and tenants are for strategy canary")
        return self


def _event(record: dict[str, Any], kind: str, now: float, **fields: Any) -> None:
    """Append one event (``seq`` numbers them; SSE ``id``)."""
    seq = int(record.get("event_seq", 0)) + 1
    record["event_seq"] = seq
    events: list[dict[str, Any]] = record.setdefault("events", [])
    events.append({"seq": seq, "type": kind, "at": iso_utc(now), **fields})
    del events[:-MAX_EVENTS]


def _endpoint(state: ServiceState | None, instance_id: str) -> dict[str, Any]:
    inst = state.instances.get(instance_id) if state is not None else None
    if inst is None:
        return {"instance_id": instance_id}
    return {
        "instance_id": instance_id,
        "host": inst.host,
        "port": inst.port,
        "version": inst.version,
    }


class DeploymentService:
    """Creates, reads and controls deployments; also the view listener of their keys."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        catalog: CatalogIndex,
        circuits: CircuitBreakers,
        *,
        visibility_timeout: float,
    ) -> None:
        self.backend = backend
        self.view = view
        self.catalog = catalog
        self.circuits = circuits
        self.visibility_timeout = visibility_timeout
        self.changes = ChangeNotifier()
        """Notified on every change of a deployment record (wakes SSE streams)."""

    # -- view listener --------------------------------------------------------------

    def reset(self, items: dict[str, KeyValue]) -> None:
        """View resync."""
        self.changes.notify()

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """A deployment record changed."""
        self.changes.notify()

    # -- reads ----------------------------------------------------------------------

    def _load(self, deployment_id: str) -> tuple[dict[str, Any], KeyValue]:
        kv = self.view.get(deployment_key(deployment_id))
        if kv is None:
            raise DeploymentNotFound(
                f"no deployment {deployment_id!r}", details={"deployment_id": deployment_id}
            )
        record: dict[str, Any] = orjson.loads(kv.value)
        return record, kv

    def get(self, deployment_id: str) -> dict[str, Any]:
        """One deployment with its events."""
        return self._load(deployment_id)[0]

    def all(self, service: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Deployments (without their events), newest first, optionally filtered."""
        found = []
        for kv in self.view.items(DEPLOYMENTS_PREFIX):
            record = orjson.loads(kv.value)
            if (service is None or record["service"] == service) and (
                state is None or record["state"] == state
            ):
                found.append({k: v for k, v in record.items() if k != "events"})
        return sorted(found, key=lambda r: str(r["created_at"]), reverse=True)

    def active(self) -> list[tuple[dict[str, Any], KeyValue]]:
        """Every deployment that is not finished, with its stored key."""
        out = []
        for kv in self.view.items(DEPLOYMENTS_PREFIX):
            record = orjson.loads(kv.value)
            if record["state"] in ACTIVE_STATES:
                out.append((record, kv))
        return out

    # -- writes ---------------------------------------------------------------------

    async def create(self, body: DeploymentIn) -> dict[str, Any]:
        """Plan and store a new deployment (409 while the service has an active one)."""
        state = self.catalog.get(body.service)
        if state is None or not state.instances:
            raise ServiceNotFound(
                f"no service named {body.service!r} is registered",
                details={"name": body.service},
            )
        old = sorted(i for i, inst in state.instances.items() if inst.version != body.version)
        if not old:
            raise InvalidRequest(
                f"every instance of {body.service!r} already runs {body.version!r}",
                details={"errors": [{"field": "version", "problem": "nothing to replace"}]},
            )
        versions = Counter(str(state.instances[i].version) for i in old)
        batch = min(body.batch_size, body.max_unavailable or body.batch_size)
        tier = minimum_tier(state.subscription_requirements) or "free"
        now = time.time()
        deployment_id = f"dep-{int(now * 1000)}-{secrets.token_hex(3)}"
        record: dict[str, Any] = {
            "id": deployment_id,
            "service": body.service,
            "version": body.version,
            "previous_version": versions.most_common(1)[0][0],
            "strategy": body.strategy,
            "batch_size": body.batch_size,
            "max_unavailable": body.max_unavailable,
            "min_healthy_seconds": body.min_healthy_seconds,
            "max_failure_rate": (
                body.max_failure_rate
                if body.max_failure_rate is not None
                else self.circuits.policies[tier].failure_rate
            ),
            "batch_timeout_seconds": body.batch_timeout_seconds,
            "weight_percent": body.weight_percent,
            "tenants": body.tenants,
            "promoted": False,
            "plan": [old[i : i + batch] for i in range(0, len(old), batch)],
            "baseline": len(state.instances) - len(old),
            "state": "running",
            "next_batch": 0,
            "batch": None,
            "replaced": 0,
            "reason": None,
            "created_at": iso_utc(now),
            "updated_at": iso_utc(now),
        }
        _event(record, "created", now, plan=record["plan"])
        await self._release_finished(body.service)
        try:
            revision = await self.backend.put_all(
                [
                    Put(deployment_key(deployment_id), orjson.dumps(record), if_revision=0),
                    Put(active_key(body.service), deployment_id.encode(), if_revision=0),
                ]
            )
        except RevisionConflict:
            kv = self.view.get(active_key(body.service))
            raise DeploymentActive(
                f"{body.service!r} already has an active deployment",
                details={
                    "service": body.service,
                    "active_deployment": kv.value.decode() if kv is not None else None,
                },
            ) from None
        await self.view.wait_for(revision, self.visibility_timeout)
        return record

    async def _release_finished(self, service: str) -> None:
        """Drop the service's active name when it names a finished deployment (the
        leader's sweep may not have run yet)."""
        kv = self.view.get(active_key(service))
        if kv is None:
            return
        named = self.view.get(deployment_key(kv.value.decode(errors="replace")))
        if named is not None and orjson.loads(named.value)["state"] in ACTIVE_STATES:
            return
        with contextlib.suppress(RevisionConflict):
            await self.backend.delete(kv.key, if_revision=kv.mod_revision)

    async def control(self, deployment_id: str, action: str) -> dict[str, Any]:
        """``pause``, ``resume``, ``abort`` or ``promote`` (409 when the state does not
        allow it). ``promote`` ends a canary: the rest continues as a rolling update."""
        allowed = {
            "pause": {"running"},
            "resume": {"paused"},
            "abort": ACTIVE_STATES,
            "promote": {"canary"},
        }
        for _ in range(20):
            record, kv = self._load(deployment_id)
            if record["state"] not in allowed[action]:
                raise DeploymentActive(
                    f"cannot {action} a deployment that is {record['state']}",
                    details={"deployment_id": deployment_id, "state": record["state"]},
                )
            now = time.time()
            if action == "abort":
                self._finish(record, "aborted", "aborted by hand", now)
            elif action == "promote":
                record["state"] = "running"
                record["promoted"] = True
                _event(record, "promoted", now)
            else:
                record["state"] = "paused" if action == "pause" else "running"
                _event(record, "paused" if action == "pause" else "resumed", now)
            record["updated_at"] = iso_utc(now)
            try:
                revision = await self.backend.put(
                    deployment_key(deployment_id), orjson.dumps(record), if_revision=kv.mod_revision
                )
            except RevisionConflict:
                await asyncio.sleep(0.02)  # the leader stepped it meanwhile: decide again
                continue
            await self.view.wait_for(revision, self.visibility_timeout)
            if record["state"] != "paused":
                await self.sweep()  # marks and canary routing it no longer needs, at once
            return record
        raise DeploymentActive(
            "the deployment kept changing; try again", details={"deployment_id": deployment_id}
        )

    def _finish(self, record: dict[str, Any], state: str, reason: str, now: float) -> None:
        """End a deployment. Failed or aborted: a ``rollback`` event names the version to
        go back to and the target-version instances to replace; old instances of later
        batches were never touched, and the current batch's survivors are un-drained."""
        record["state"] = state
        record["reason"] = reason
        record["batch"] = None
        svc = self.catalog.get(record["service"])
        if state != "succeeded":
            targets = (
                [
                    _endpoint(svc, iid)
                    for iid, inst in sorted(svc.instances.items())
                    if inst.version == record["version"]
                ]
                if svc is not None
                else []
            )
            _event(
                record,
                "rollback",
                now,
                previous_version=record["previous_version"],
                target_version=record["version"],
                instances=targets,
                reason=reason,
            )
        _event(record, state, now, reason=reason)

    async def sweep(self) -> None:
        """Remove what finished deployments leave: draining marks and active names.

        A mark whose deployment is no longer active goes (its instance is gone, or it
        was un-drained by a failure or abort); so does an active name that points at a
        finished deployment. Idempotent, so any replica may run it after a crash.
        """
        running = self.active()
        active = {r["id"] for r, _ in running}
        canaries = {r["id"] for r, _ in running if r["state"] == "canary"}
        doomed = [
            kv for kv in self.view.items(ROUTING_PREFIX) if _deployment_of(kv) not in canaries
        ]
        doomed += [
            kv
            for kv in self.view.items(ACTIVE_PREFIX)
            if kv.value.decode(errors="replace") not in active
        ]
        for kv in self.view.items(DRAINING_PREFIX):
            try:
                mark = orjson.loads(kv.value)
            except orjson.JSONDecodeError:
                mark = {}
            if not isinstance(mark, dict) or mark.get("deployment_id") not in active:
                doomed.append(kv)
        last: int | None = None
        for kv in doomed:
            with contextlib.suppress(RevisionConflict):
                last = await self.backend.delete(kv.key, if_revision=kv.mod_revision) or last
        if last is not None:
            await self.view.wait_for(last, self.visibility_timeout)

    # -- events ---------------------------------------------------------------------

    async def subscribe(
        self, deployment_id: str, *, after: int, keepalive: float
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Events with ``seq`` > ``after`` as they happen (``None``: keep-alive), ending
        once the deployment has finished and every event was sent."""
        self._load(deployment_id)
        while True:
            changed = self.changes.current()
            record, _ = self._load(deployment_id)
            for event in record.get("events", []):
                if event["seq"] > after:
                    after = event["seq"]
                    yield event
            if record["state"] in TERMINAL_STATES or self.changes.closed:
                return
            try:
                async with asyncio.timeout(keepalive):
                    await changed.wait()
            except TimeoutError:
                yield None

    # -- the leader's step ------------------------------------------------------------

    async def step_all(self, now: float | None = None) -> None:
        """Advance every active deployment by at most one step (the leader's tick)."""
        now = time.time() if now is None else now
        for record, kv in self.active():
            # Changed meanwhile (pause, abort, another leader): the next tick decides again.
            with contextlib.suppress(RevisionConflict):
                await self._step(record, kv, now)
        await self.sweep()

    async def _step(self, record: dict[str, Any], kv: KeyValue, now: float) -> None:
        before = orjson.dumps(record)
        if record["state"] == "running":
            puts = self._advance(record, now)
        elif record["state"] == "canary":
            # The canary's instances serve real callers: the health gate still holds.
            failure = self._failure(record, self.catalog.get(record["service"]), now)
            if failure is not None:
                self._finish(record, "failed", failure, now)
            puts = []
        else:
            return
        after = orjson.dumps(record)
        if after == before:
            return
        record["updated_at"] = iso_utc(now)
        revision = await self.backend.put_all(
            [Put(kv.key, orjson.dumps(record), if_revision=kv.mod_revision), *puts]
        )
        await self.view.wait_for(revision, self.visibility_timeout)

    def _advance(self, record: dict[str, Any], now: float) -> list[Put]:
        """One step of a running deployment; returns the other writes of the step
        (draining marks, canary routing), made in one transaction with the record."""
        svc = self.catalog.get(record["service"])
        if record["batch"] is None:
            return self._start_batch(record, svc, now)
        failure = self._failure(record, svc, now)
        if failure is not None:
            self._finish(record, "failed", failure, now)
            return []
        batch = record["batch"]
        instances = svc.instances if svc is not None else {}
        gone = all(m not in instances for m in batch["members"])
        healthy_since: dict[str, float] = batch["healthy_since"]
        healthy_now = {
            iid
            for iid, inst in instances.items()
            if inst.version == record["version"]
            and svc is not None
            and iid not in svc.draining
            and svc.status_of(iid) == "healthy"
        }
        for iid in list(healthy_since):
            if iid not in healthy_now:
                del healthy_since[iid]
        for iid in healthy_now:
            healthy_since.setdefault(iid, now)
        proven = sum(
            1 for since in healthy_since.values() if now - since >= record["min_healthy_seconds"]
        )
        needed = record["baseline"] + record["replaced"] + len(batch["members"])
        if gone and proven >= needed:
            record["replaced"] += len(batch["members"])
            record["next_batch"] = batch["index"] + 1
            record["batch"] = None
            _event(record, "batch_completed", now, batch=batch["index"], healthy=proven)
            if record["strategy"] == "canary" and not record["promoted"]:
                return [self._enter_canary(record, now)]
        return []

    def _enter_canary(self, record: dict[str, Any], now: float) -> Put:
        """Hold after the first batch: discovery offers the new version only to the
        canary's tenants and share until ``promote``."""
        record["state"] = "canary"
        routing = {
            "deployment_id": record["id"],
            "version": record["version"],
            "tenants": record["tenants"],
            "weight_percent": record["weight_percent"],
        }
        _event(record, "canary", now, **{k: v for k, v in routing.items() if k != "deployment_id"})
        return Put(routing_key(record["service"]), orjson.dumps(routing))

    def _start_batch(
        self, record: dict[str, Any], svc: ServiceState | None, now: float
    ) -> list[Put]:
        index = record["next_batch"]
        if index >= len(record["plan"]):
            self._finish(record, "succeeded", "every batch replaced", now)
            return []
        instances = svc.instances if svc is not None else {}
        # Instances that went away by themselves are not drained (nor waited for).
        members = [iid for iid in record["plan"][index] if iid in instances]
        others = [
            iid
            for iid in instances
            if iid not in members
            and svc is not None
            and iid not in svc.draining
            and svc.status_of(iid) == "healthy"
        ]
        if members and not others:
            # Draining now would leave no healthy instance: wait for one (said once).
            if record.get("waiting") != index:
                record["waiting"] = index
                _event(record, "waiting", now, batch=index, reason="would drain the last healthy")
            return []
        record["batch"] = {
            "index": index,
            "members": members,
            "started_at": now,
            "healthy_since": {},
        }
        _event(record, "batch_started", now, batch=index, instances=members)
        marks: list[Put] = []
        for iid in members:
            mark = {"deployment_id": record["id"], "desired_version": record["version"]}
            # if_revision=0: a mark already there means a step is being repeated: refuse.
            marks.append(Put(draining_key(record["service"], iid), orjson.dumps(mark), 0))
            _event(
                record, "draining", now, desired_version=record["version"], **_endpoint(svc, iid)
            )
        return marks

    def _failure(self, record: dict[str, Any], svc: ServiceState | None, now: float) -> str | None:
        """Why the current batch fails, if it does: a target-version instance critical,
        the service's failure rate above the limit, or the batch out of time."""
        if svc is not None:
            for iid, inst in sorted(svc.instances.items()):
                if inst.version == record["version"] and svc.status_of(iid) == "critical":
                    return f"instance {iid} of version {record['version']} failed its health check"
            for tier, circuit in self.circuits.describe(record["service"], now).items():
                window = circuit["window"]
                rate = window["failure_rate"]
                if (
                    rate is not None
                    and window["calls"] >= window["minimum_calls"]
                    and rate > record["max_failure_rate"]
                ):
                    return (
                        f"failure rate {rate} for the {tier} tier exceeds "
                        f"{record['max_failure_rate']}"
                    )
        batch = record["batch"]
        if batch is not None and now - batch["started_at"] > record["batch_timeout_seconds"]:
            return f"batch {batch['index']} not done within the batch timeout"
        return None


class DeploymentDriver:
    """The elected replica's loop: advance every active deployment each tick."""

    def __init__(self, deployments: DeploymentService, *, tick_seconds: float) -> None:
        self.deployments = deployments
        self.tick_seconds = tick_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start driving (called when this replica is elected)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="deployment-driver")

    async def stop(self) -> None:
        """Stop driving (demoted or stopping)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                await self.deployments.step_all()
            except HubError as exc:
                log.warning("deployment step failed (retrying): %s", exc)
            except Exception:  # one bad record must not stop every deployment
                log.exception("deployment step failed")
            await asyncio.sleep(self.tick_seconds)
