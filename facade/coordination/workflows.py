"""Workflow coordination: stored DAGs of service steps and the spec's coordination plan.

A workflow is one key, ``coordination/workflows/<id>``, holding its steps: each names a
service, the steps it depends on (a DAG) and optionally the lowest tier allowed to run
it. Every replica's view carries the key, so any replica answers
``POST /coordination/workflow/{id}`` from memory.

The plan (the spec's "Backend Service Coordination") lists every step in dependency
order with where to call it directly. The hub only informs: it never calls the services.
A step the caller's tier may not use, with no healthy instance, or whose circuit is OPEN
for that tier keeps its entry, ``flagged`` with the reasons, and the plan's ``runnable``
says whether every step can run now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from adapters import Backend
from facade.circuits.breakers import CircuitBreakers
from facade.discovery.lookup import DiscoveryService
from facade.models import SERVICE_NAME_PATTERN
from facade.state.catalog import CatalogIndex
from facade.state.view import StateView
from shared.errors import InvalidRequest, WorkflowNotFound
from shared.tenancy import TIER_RANK, TenantContext, Tier, can_access, minimum_tier
from shared.timestamps import utc_now

WORKFLOWS_PREFIX = "coordination/workflows/"
MAX_STEPS = 64

Name = Annotated[str, StringConstraints(pattern=SERVICE_NAME_PATTERN)]


def workflow_key(workflow_id: str) -> str:
    """The key of one workflow definition."""
    return f"{WORKFLOWS_PREFIX}{workflow_id}"


class StepIn(BaseModel):
    """One step of a workflow definition."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Step name, unique in the workflow.")
    service: Name = Field(description="The registered service this step calls.")
    depends_on: list[Name] = Field(
        default_factory=list, max_length=MAX_STEPS, description="Steps that must run first."
    )
    required_tier: Tier | None = Field(
        None, description="Lowest subscription tier allowed to run this step."
    )


class WorkflowIn(BaseModel):
    """``PUT /coordination/workflows/{id}``: the workflow's steps (a DAG)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", max_length=1000)
    steps: list[StepIn] = Field(min_length=1, max_length=MAX_STEPS)


@dataclass(frozen=True, slots=True)
class Step:
    """One stored step."""

    name: str
    service: str
    depends_on: tuple[str, ...]
    required_tier: str | None

    def to_record(self) -> dict[str, Any]:
        """The stored (and API) form."""
        return {
            "name": self.name,
            "service": self.service,
            "depends_on": list(self.depends_on),
            "required_tier": self.required_tier,
        }


def dependency_order(steps: list[StepIn]) -> list[str]:
    """Step names with every step after its dependencies (ties keep definition order).

    Raises InvalidRequest (422) for duplicate names, unknown dependencies and cycles.
    """
    names = [s.name for s in steps]
    problems: list[dict[str, Any]] = []
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append({"field": "steps", "problem": "duplicate step names", "names": duplicates})
    known = set(names)
    for step in steps:
        unknown = [d for d in step.depends_on if d not in known]
        if unknown:
            problems.append(
                {"step": step.name, "problem": "depends on unknown steps", "names": unknown}
            )
        if step.name in step.depends_on:
            problems.append({"step": step.name, "problem": "depends on itself"})
    if problems:
        raise InvalidRequest(
            "the workflow's steps are not a valid DAG", details={"errors": problems}
        )
    # Kahn's algorithm, always taking the earliest defined ready step: a stable order.
    pending = {s.name: set(s.depends_on) for s in steps}
    order: list[str] = []
    while pending:
        ready = [n for n in names if n in pending and not pending[n]]
        if not ready:
            cycle = sorted(pending)
            raise InvalidRequest(
                "the workflow's steps depend on each other in a cycle",
                details={"errors": [{"problem": "cycle", "steps": cycle}]},
            )
        done = ready[0]
        order.append(done)
        del pending[done]
        for deps in pending.values():
            deps.discard(done)
    return order


class WorkflowService:
    """Defines, reads and removes workflows, and answers their coordination plans."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        catalog: CatalogIndex,
        discovery: DiscoveryService,
        circuits: CircuitBreakers,
        *,
        visibility_timeout: float,
    ) -> None:
        self.backend = backend
        self.view = view
        self.catalog = catalog
        self.discovery = discovery
        self.circuits = circuits
        self.visibility_timeout = visibility_timeout

    # -- definitions ----------------------------------------------------------------

    def get(self, workflow_id: str) -> dict[str, Any]:
        """A stored workflow (WorkflowNotFound otherwise)."""
        kv = self.view.get(workflow_key(workflow_id))
        if kv is None:
            raise WorkflowNotFound(
                f"no workflow named {workflow_id!r} is defined",
                details={"workflow_id": workflow_id},
            )
        record: dict[str, Any] = orjson.loads(kv.value)
        return record | {"version": kv.mod_revision}

    def all(self) -> list[dict[str, Any]]:
        """Every stored workflow, by id."""
        found = [
            orjson.loads(kv.value) | {"version": kv.mod_revision}
            for kv in self.view.items(WORKFLOWS_PREFIX)
        ]
        return sorted(found, key=lambda w: str(w["workflow_id"]))

    async def put(self, workflow_id: str, body: WorkflowIn) -> tuple[dict[str, Any], bool]:
        """Create or replace a workflow; return it and whether it was created.

        Refused (422, nothing written) when the steps are not a DAG or name a service
        that is not registered.
        """
        order = dependency_order(body.steps)
        unknown = sorted({s.service for s in body.steps if self.catalog.get(s.service) is None})
        if unknown:
            raise InvalidRequest(
                "the workflow names services that are not registered",
                details={"errors": [{"problem": "unknown services", "services": unknown}]},
            )
        by_name = {s.name: s for s in body.steps}
        steps = [
            Step(n, by_name[n].service, tuple(by_name[n].depends_on), by_name[n].required_tier)
            for n in order
        ]
        existing = self.view.get(workflow_key(workflow_id))
        now = utc_now()
        created_at = orjson.loads(existing.value)["created_at"] if existing else now
        record = {
            "workflow_id": workflow_id,
            "description": body.description,
            "steps": [s.to_record() for s in steps],
            "created_at": created_at,
            "updated_at": now,
        }
        revision = await self.backend.put(
            workflow_key(workflow_id),
            orjson.dumps(record),
            # Compare-and-set: a concurrent PUT of the same id is one write, not a mix.
            if_revision=existing.mod_revision if existing else 0,
        )
        await self.view.wait_for(revision, self.visibility_timeout)
        return record | {"version": revision}, existing is None

    async def delete(self, workflow_id: str) -> dict[str, Any]:
        """Remove a workflow (WorkflowNotFound when absent)."""
        self.get(workflow_id)
        revision = await self.backend.delete(workflow_key(workflow_id))
        if revision is None:
            raise WorkflowNotFound(
                f"no workflow named {workflow_id!r} is defined",
                details={"workflow_id": workflow_id},
            )
        await self.view.wait_for(revision, self.visibility_timeout)
        return {"workflow_id": workflow_id, "deleted": True}

    # -- the spec's coordination plan -------------------------------------------------

    def plan(self, workflow_id: str, ctx: TenantContext) -> dict[str, Any]:
        """The spec's answer to ``POST /coordination/workflow/{workflow_id}``.

        Every step, in dependency order, with its direct endpoint and backups for the
        caller's tier; problems flag a step instead of dropping it.
        """
        workflow = self.get(workflow_id)
        tier = self.discovery.effective_tier(ctx)
        context = {
            "tenant_id": ctx.tenant_id,
            "subscription_tier": tier,
            "user_id": ctx.user_id,
        }
        now = time.time()
        entries = [self._entry(step, tier, context, now) for step in workflow["steps"]]
        return {
            "workflow_id": workflow_id,
            "coordination_plan": entries,
            "connection_pattern": "direct_service_calls",
            "central_hub_role": "information_provider_only",
            "runnable": not any(e["flagged"] for e in entries),
            "subscription_tier": tier,
            "stale": self.view.stale,
        }

    def _entry(
        self, step: dict[str, Any], tier: str, context: dict[str, Any], now: float
    ) -> dict[str, Any]:
        service = str(step["service"])
        flags: list[dict[str, Any]] = []
        required = step.get("required_tier")
        if required is not None and TIER_RANK.get(tier, 0) < TIER_RANK[required]:
            flags.append(
                {
                    "reason": "tier_not_allowed",
                    "message": f"step {step['name']!r} requires the {required!r} tier",
                    "required_tier": required,
                }
            )
        state = self.catalog.get(service)
        if state is None or not state.instances:
            flags.append(
                {"reason": "service_not_registered", "message": f"{service!r} has no instances"}
            )
            return self._shape(step, context, None, [], {"status": "unknown"}, flags)
        reqs = state.subscription_requirements
        if not can_access(reqs, tier):
            flags.append(
                {
                    "reason": "tier_not_allowed",
                    "message": f"{service!r} requires the {minimum_tier(reqs)!r} tier",
                    "required_tier": minimum_tier(reqs),
                }
            )
        verdict = self.circuits.verdict(service, tier, now)
        candidates = state.candidates()
        healthy = [c.url for c in candidates.candidates if c.status == "healthy"]
        health = {
            "status": state.health_summary()["status"],
            "healthy_instances": len(healthy),
            "instances": len(state.instances),
            "circuit": verdict.public(now),
        }
        if verdict.is_open:
            flags.append(
                {
                    "reason": "circuit_open",
                    "message": f"the circuit of {service!r} is open for the {tier!r} tier",
                    "retry_at": health["circuit"]["retry_at"],
                }
            )
        if not healthy:
            flags.append(
                {
                    "reason": "no_healthy_instance",
                    "message": f"no instance of {service!r} is healthy",
                }
            )
        if flags:
            # Nothing to call: a tier that may not use it, or nothing callable right now.
            return self._shape(step, context, None, [], health, flags)
        chosen = self.discovery.selector.pick(service, candidates, self.discovery.default_strategy)
        direct = chosen.url if chosen is not None else healthy[0]
        return self._shape(step, context, direct, healthy, health, flags)

    @staticmethod
    def _shape(
        step: dict[str, Any],
        context: dict[str, Any],
        direct: str | None,
        backups: list[str],
        health: dict[str, Any],
        flags: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "service_name": step["service"],
            "direct_endpoint": direct,
            # The spec's value: every healthy endpoint (the direct one included).
            "backup_endpoints": backups,
            "health_status": health,
            "tenant_context": context,
            "call_method": "direct_http_call",
            "step": step["name"],
            "depends_on": step["depends_on"],
            "flagged": bool(flags),
            "flags": flags,
        }
