"""The active health prober: runs on the elected replica only (see ``state.leader_election``).

One scheduler task keeps a heap of due probes; each probe runs as its own task but at
most ``concurrency`` run at once (a semaphore), HTTP through ``httpx.AsyncClient`` (one
per target, holding a kept-alive connection) and TCP through ``asyncio.open_connection``.
Schedules are fixed rate (``next = previous due + interval``), so a slow round does not
drift; a probe still running when its next turn comes is skipped and counted, never
stacked. How late probes start against their schedule is recorded
(:meth:`HealthProber.stats`).

Results go through :class:`facade.health.tracker.HealthTracker` and are written (by one
writer task, coalescing per instance) to ``health/<service>/<instance>`` only when they
change meaningfully (:meth:`~facade.health.tracker.HealthTracker.should_write`), so a
steady fleet costs one write per instance per ``refresh_seconds``, not one per probe.
Probe outcomes of instances that discovery currently offers also feed the service's
circuit breakers; outcomes of instances already critical do not (health has removed them
already, counting them again would trip the whole service for one dead instance).
Instances critical for longer than their check's ``deregister_after`` are deregistered;
health records left behind by instances that vanished (an expired lease) are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from adapters import Backend
from facade.circuits.breakers import CircuitBreakers
from facade.health.tracker import HealthTracker
from facade.state.catalog import CatalogIndex, Instance, endpoint_url, health_key
from facade.state.check_spec import CheckSpec
from facade.state.instances import RegistryService
from facade.state.view import StateView
from facade.tasks import cancel_and_wait
from shared.errors import HubError, InstanceNotFound

log = logging.getLogger("central_hub.prober")

MAX_IDLE_WAIT = 0.25
"""Longest the scheduler sleeps, so catalog changes are picked up promptly."""
LAG_SAMPLES = 10_000
"""Probes the start-lag percentiles are computed over (the most recent ones)."""
KEEPALIVE_TARGETS = 4096
"""HTTP targets that get a kept-alive connection of their own; any beyond share one
client that reconnects per probe (bounds the prober's idle sockets)."""
KEEPALIVE_EXPIRY = 120.0
"""Idle probe connections are kept this long: longer than any usual check interval."""


def _http_client(keepalive: bool) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=None if not keepalive else 2,
            max_keepalive_connections=1 if keepalive else 0,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        ),
        follow_redirects=False,
        trust_env=False,
    )


@dataclass
class _Target:
    service: str
    instance: Instance
    tracker: HealthTracker
    generation: int = 0
    in_flight: bool = False
    client: httpx.AsyncClient | None = None
    """This target's own HTTP client (one kept-alive connection), if it has one."""


@dataclass
class ProbeStats:
    """What the prober did in its current term."""

    probes: int = 0
    failures: int = 0
    skipped_still_running: int = 0
    writes: int = 0
    write_errors: int = 0
    deregistered: int = 0
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))

    def summary(self) -> dict[str, Any]:
        """Counts plus start-lag percentiles (ms) over the last :data:`LAG_SAMPLES` probes."""
        lags = sorted(self.lag_ms)

        def pct(q: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))], 2) if lags else None

        return {
            "probes": self.probes,
            "failures": self.failures,
            "skipped_still_running": self.skipped_still_running,
            "writes": self.writes,
            "write_errors": self.write_errors,
            "deregistered": self.deregistered,
            "lag_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": lags[-1] if lags else None},
        }


async def probe_once(
    client: httpx.AsyncClient, instance: Instance, spec: CheckSpec
) -> tuple[bool, float | None, str]:
    """Run one check: (passed, latency in ms, output). Never raises for a failed check."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(spec.timeout):
            if spec.kind == "http":
                scheme = instance.protocol if instance.protocol in ("http", "https") else "http"
                url = endpoint_url(scheme, instance.host, instance.port) + instance.health_endpoint
                response = await client.get(url)
                latency = (loop.time() - started) * 1000
                passed = 200 <= response.status_code < 300
                return passed, latency, f"HTTP {response.status_code}"
            _, writer = await asyncio.open_connection(instance.host, instance.port)
            latency = (loop.time() - started) * 1000
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True, latency, "TCP connect succeeded"
    except TimeoutError:
        return False, None, f"timed out after {spec.timeout:g}s"
    except (httpx.HTTPError, OSError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:512]


class HealthProber:
    """Probes every instance with an HTTP or TCP check and records the results."""

    def __init__(
        self,
        backend: Backend,
        view: StateView,
        catalog: CatalogIndex,
        circuits: CircuitBreakers,
        registry: RegistryService,
        *,
        concurrency: int = 100,
        refresh_seconds: float = 60.0,
    ) -> None:
        self.backend = backend
        self.view = view
        self.catalog = catalog
        self.circuits = circuits
        self.registry = registry
        self.concurrency = concurrency
        self.refresh_seconds = refresh_seconds
        self.stats = ProbeStats()
        self._targets: dict[tuple[str, str], _Target] = {}
        self._heap: list[tuple[float, int, tuple[str, str], int]] = []
        self._seq = itertools.count()
        self._seen_version = -1
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random()
        self._pending_writes: dict[
            tuple[str, str], tuple[_Target, dict[str, Any], dict[str, Any], float]
        ] = {}
        self._write_wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._keepalive: set[int] = set()

    @property
    def running(self) -> bool:
        """Whether this replica is probing now."""
        return self._task is not None

    async def start(self) -> None:
        """Begin probing (called when this replica becomes leader)."""
        if self._task is not None:
            return
        self.stats = ProbeStats()
        # Shared by targets beyond KEEPALIVE_TARGETS (no keep-alive); the others get a
        # client each (see _client_for).
        self._client = _http_client(keepalive=False)
        self._seen_version = -1
        self._pending_writes.clear()
        self._write_wakeup = asyncio.Event()
        self._writer = asyncio.create_task(self._write_results(), name="health-writer")
        self._task = asyncio.create_task(self._run(), name="health-prober")
        log.info("health prober started")

    async def stop(self) -> None:
        """Stop probing and forget every schedule (called on losing leadership)."""
        await cancel_and_wait(self._task, self._writer)
        self._task = self._writer = None
        probes = list(self._probes)
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        self._probes.clear()
        await self._close_clients(list(self._targets.values()))
        self._targets.clear()
        self._heap.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        log.info("health prober stopped")

    def describe(self) -> dict[str, Any]:
        """Whether probing runs here, how many targets, and the term's statistics."""
        return {
            "running": self.running,
            "targets": len(self._targets),
            "in_flight": len(self._probes),
            **self.stats.summary(),
        }

    # -- scheduling -----------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        semaphore = asyncio.Semaphore(self.concurrency)
        first = True
        while True:
            if self.catalog.catalog_version != self._seen_version:
                self._reconcile(loop.time(), spread=first)
                first = False
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                due, _, key, generation = heapq.heappop(self._heap)
                target = self._targets.get(key)
                if target is None or target.generation != generation:
                    continue  # removed or rescheduled since
                interval = target.tracker.spec.interval
                next_due = due + interval
                if next_due <= now:  # fell a whole interval behind: restart the rhythm
                    next_due = now + interval
                self._push(next_due, key, generation)
                if target.in_flight:
                    self.stats.skipped_still_running += 1
                    continue
                target.in_flight = True
                task = asyncio.create_task(self._probe(target, due, semaphore))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)
            wait = MAX_IDLE_WAIT
            if self._heap:
                wait = min(wait, max(0.0, self._heap[0][0] - loop.time()))
            await asyncio.sleep(wait)

    def _push(self, due: float, key: tuple[str, str], generation: int) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), key, generation))

    def _reconcile(self, now: float, *, spread: bool) -> None:
        """Match the schedule to the catalog: add, update and drop targets.

        New instances are probed at once. At the start of a term the first probes are
        spread out so a thousand instances are not probed in one burst: over one second
        for instances never checked, over one interval for those with a stored result.
        """
        self._seen_version = self.catalog.catalog_version
        present: set[tuple[str, str]] = set()
        orphans: list[str] = []
        for service, state in self.catalog.services.items():
            orphans.extend(
                health_key(service, iid) for iid in state.health if iid not in state.instances
            )
            for iid, inst in state.instances.items():
                spec = inst.check_spec
                if not spec.probed:
                    continue
                key = (service, iid)
                present.add(key)
                target = self._targets.get(key)
                if target is None:
                    record = state.health.get(iid)
                    tracker = HealthTracker.from_record(spec, record)
                    target = self._targets[key] = _Target(service, inst, tracker)
                    # Never checked: soon. Checked before (a new term): anywhere in one
                    # interval, so a takeover does not probe the whole fleet at once.
                    window = spec.interval if record else min(1.0, spec.interval)
                    delay = self._rng.uniform(0, window) if spread else 0.0
                    self._push(now + delay, key, target.generation)
                elif target.instance.revision != inst.revision:
                    target.instance = inst
                    if target.tracker.spec != spec:
                        target.tracker.spec = spec
                        target.generation += 1
                        self._push(now, key, target.generation)
        gone = [self._targets.pop(k) for k in [k for k in self._targets if k not in present]]
        if any(t.client is not None for t in gone):
            self._spawn(self._close_clients(gone))
        if orphans:
            self._spawn(self._delete_orphans(orphans))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    def _client_for(self, target: _Target) -> httpx.AsyncClient:
        """A client per target keeps its connection alive between probes.

        One shared httpx client with thousands of kept-alive connections costs far more
        CPU per request than the probe itself (its pool scans every connection), so each
        target gets a client of its own holding one connection, up to KEEPALIVE_TARGETS.
        """
        if (
            target.client is None
            and target.tracker.spec.kind == "http"
            and len(self._keepalive) < KEEPALIVE_TARGETS
        ):
            target.client = _http_client(keepalive=True)
            self._keepalive.add(id(target))
        if target.client is not None:
            return target.client
        assert self._client is not None
        return self._client

    async def _close_clients(self, targets: list[_Target]) -> None:
        for target in targets:
            if target.client is not None:
                client, target.client = target.client, None
                self._keepalive.discard(id(target))
                with contextlib.suppress(Exception):
                    await client.aclose()

    # -- one probe ------------------------------------------------------------------

    async def _probe(self, target: _Target, due: float, semaphore: asyncio.Semaphore) -> None:
        key = (target.service, target.instance.instance_id)
        try:
            try:
                async with semaphore:
                    self.stats.lag_ms.append(
                        max(0.0, asyncio.get_running_loop().time() - due) * 1000
                    )
                    passed, latency, output = await probe_once(
                        self._client_for(target), target.instance, target.tracker.spec
                    )
                if self._targets.get(key) is not target:
                    return  # deregistered or re-scheduled while probing
                offered, now = self._observe(target, passed, latency, output)
            finally:
                # Free the target for its next turn now: what follows may wait on the
                # backend, and a slow store must not make probes skip their schedule.
                target.in_flight = False
            if offered:
                await self.circuits.record(target.service, passed, latency, now=now)
            if target.tracker.should_deregister(now):
                await self._deregister(target)
        except asyncio.CancelledError:
            raise
        except HubError as exc:
            log.warning("after probing %s/%s: %s", *key, exc)
        except Exception:
            log.exception("probe of %s/%s failed unexpectedly", *key)

    def _observe(
        self, target: _Target, passed: bool, latency: float | None, output: str
    ) -> tuple[bool, float]:
        """Feed the tracker; queue a write when the result changed meaningfully."""
        tracker = target.tracker
        now = time.time()
        self.stats.probes += 1
        if not passed:
            self.stats.failures += 1
        offered = tracker.status in ("healthy", "degraded")
        tracker.observe(passed, latency, now, output)
        if tracker.should_write(now, self.refresh_seconds):
            record, token = tracker.snapshot()
            key = (target.service, target.instance.instance_id)
            # Latest result wins: a queued, unwritten older one is replaced.
            self._pending_writes[key] = (target, record, token, now)
            self._write_wakeup.set()
        return offered, now

    async def _write_results(self) -> None:
        """The one writer of health results: drains the queue, coalescing per instance."""
        while True:
            await self._write_wakeup.wait()
            self._write_wakeup.clear()
            while self._pending_writes:
                batch, self._pending_writes = self._pending_writes, {}
                for key, (target, record, token, at) in batch.items():
                    if self._targets.get(key) is not target:
                        continue
                    try:
                        await self.backend.put(health_key(*key), orjson.dumps(record))
                    except HubError as exc:
                        # Not marked written: the next probe's result queues it again.
                        self.stats.write_errors += 1
                        log.warning("could not record health of %s/%s: %s", *key, exc)
                        continue
                    target.tracker.mark_written(at, token)
                    self.stats.writes += 1

    async def _deregister(self, target: _Target) -> None:
        service, iid = target.service, target.instance.instance_id
        log.warning(
            "deregistering %s/%s: critical for %.0fs",
            service,
            iid,
            target.tracker.critical_for(time.time()),
        )
        try:
            await self.registry.deregister(service, iid)
            self.stats.deregistered += 1
        except InstanceNotFound:
            pass
        except HubError as exc:  # stays scheduled; the next probe tries again
            log.warning("could not deregister %s/%s: %s", service, iid, exc)
            return
        if self._targets.get((service, iid)) is target:
            del self._targets[(service, iid)]
            await self._close_clients([target])

    async def _delete_orphans(self, keys: list[str]) -> None:
        for key in keys:
            kv = self.view.get(key)
            if kv is None:
                continue
            with contextlib.suppress(HubError):  # re-registered meanwhile, or backend down
                await self.backend.delete(key, if_revision=kv.mod_revision)
