"""Leader election through a backend lease: one hub replica runs the prober at a time.

The leader holds ``leader/<role>``, created with ``if_revision=0`` (only if absent) and
bound to a lease it keeps alive every ``ttl / 3`` seconds. Followers look for the key
every ``ttl / 3`` seconds (a cheap backend get) and, the moment the view reports the key
deleted, try at once. When the leader dies its lease expires within ``ttl`` and the key
vanishes, so another replica takes over within ``ttl`` plus one look-up interval. A
leader that cannot renew for ``ttl`` (backend unreachable) steps down by itself, since its
key may be gone and another replica may be leading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from adapters import Backend, EventType, KeyValue, WatchEvent
from facade.tasks import cancel_and_wait
from shared.errors import HubError, LeaseNotFound, RevisionConflict
from shared.timestamps import iso_utc

log = logging.getLogger("central_hub.leader")

LEADER_PREFIX = "leader/"

Callback = Callable[[], Awaitable[None]]


def default_identity() -> str:
    """Host, process and a random suffix: unique per hub process."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class LeaderElection:
    """Campaigns for ``leader/<role>`` and calls back on winning and losing it."""

    def __init__(
        self,
        backend: Backend,
        role: str,
        *,
        ttl: int = 10,
        identity: str | None = None,
        on_elected: Callback | None = None,
        on_demoted: Callback | None = None,
    ) -> None:
        self.backend = backend
        self.key = f"{LEADER_PREFIX}{role}"
        self.ttl = ttl
        self.identity = identity or default_identity()
        self.on_elected = on_elected
        self.on_demoted = on_demoted
        self.is_leader = False
        self.elected_at: float | None = None
        self._lease_id: int | None = None
        self._vacancy = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        """Seconds between renewals (leader) and look-ups (follower)."""
        return max(0.2, self.ttl / 3)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start campaigning in the background."""
        self._task = asyncio.create_task(self._run(), name=f"leader-{self.key}")

    async def stop(self) -> None:
        """Stop campaigning; a leader releases the key so another replica takes over now."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        lease_id = self._lease_id
        await self._demote("stopping")
        if lease_id is not None:
            with contextlib.suppress(HubError):
                await self.backend.revoke_lease(lease_id)

    def describe(self) -> dict[str, Any]:
        """Who this replica is and whether it leads."""
        return {
            "identity": self.identity,
            "leader": self.is_leader,
            "elected_at": iso_utc(self.elected_at) if self.elected_at else None,
            "lease_ttl": self.ttl,
        }

    # -- view listener: learn of a vacancy without waiting for the next look-up ------

    def reset(self, items: dict[str, KeyValue]) -> None:
        """View resync: a missing key is a vacancy."""
        if self.key not in items:
            self._vacancy.set()

    def apply(self, event: WatchEvent, previous: KeyValue | None) -> None:
        """The key was deleted (released or expired): campaign now."""
        if event.key == self.key and event.type is EventType.DELETE:
            self._vacancy.set()

    # -- campaigning ----------------------------------------------------------------

    async def _run(self) -> None:
        last_renewal = 0.0
        while True:
            try:
                if not self.is_leader:
                    if await self._try_acquire():
                        last_renewal = time.monotonic()
                        await self._elect()
                        continue
                    self._vacancy.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.interval):
                            await self._vacancy.wait()
                    continue
                await asyncio.sleep(self.interval)
                assert self._lease_id is not None
                await self.backend.keep_alive(self._lease_id)
                last_renewal = time.monotonic()
            except asyncio.CancelledError:
                raise
            except LeaseNotFound:
                await self._demote("lease expired")
            except HubError as exc:
                if self.is_leader and time.monotonic() - last_renewal >= self.ttl:
                    await self._demote(f"could not renew for {self.ttl}s: {exc}")
                elif not self.is_leader:
                    await asyncio.sleep(self.interval)
            except Exception:  # a failing callback must not end the campaign
                log.exception("leader election for %s failed; retrying", self.key)
                await asyncio.sleep(self.interval)

    async def _try_acquire(self) -> bool:
        if await self.backend.get(self.key) is not None:
            return False
        lease = await self.backend.grant_lease(self.ttl)
        value = orjson.dumps({"holder": self.identity, "since": iso_utc(time.time())})
        try:
            await self.backend.put(self.key, value, lease=lease.id, if_revision=0)
        except RevisionConflict:
            await self.backend.revoke_lease(lease.id)
            return False
        except BaseException:
            with contextlib.suppress(HubError):
                await self.backend.revoke_lease(lease.id)
            raise
        self._lease_id = lease.id
        return True

    async def _elect(self) -> None:
        self.is_leader = True
        self.elected_at = time.time()
        log.info("%s leads %s", self.identity, self.key)
        if self.on_elected is not None:
            await self.on_elected()

    async def _demote(self, why: str) -> None:
        self._lease_id = None
        if not self.is_leader:
            return
        self.is_leader = False
        self.elected_at = None
        log.warning("%s no longer leads %s: %s", self.identity, self.key, why)
        if self.on_demoted is not None:
            await self.on_demoted()
