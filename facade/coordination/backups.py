"""Backups of the hub's own state: snapshot, restore, scheduled backups (issue 14).

A backup is every key the hub keeps in its backend (catalog, health, tenants, config
layers and their whole history, quotas and usage, tokens (their hashes only: the hub
never stores a secret), webhooks, circuits, error groups) read by
:meth:`adapters.Backend.snapshot` at one backend revision, plus, optionally, the audit
log. It is written in the format of :mod:`facade.coordination.backup_file`.

Left out on purpose, and counted in the header as ``skipped_leased``: every key bound to
a lease (TTL instances, leader keys) and the health records of those instances. Leases
do not survive a restore; TTL instances come back when they heartbeat (re-register)
again, leaders are re-elected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters import AuditQuery, AuditRecord, Backend, KeyValue
from adapters.base import CATALOG_PREFIX, RESTORE_SCRATCH_KEY
from facade.coordination.backup_file import FORMAT_NAME, FORMAT_VERSION, Backup, write_backup
from facade.coordination.maintenance import MAINTENANCE_KEY
from facade.state.catalog import HEALTH_PREFIX
from facade.state.leader_election import LEADER_PREFIX, LeaderElection
from facade.tasks import cancel_and_wait
from shared.errors import HubError
from shared.timestamps import iso_utc

log = logging.getLogger("central_hub.backups")

LEASES_NOTE = (
    "leases are not kept: lease-bound keys (TTL instances, leader keys) are left out; "
    "TTL instances come back when they heartbeat or register again"
)
AUDIT_PAGE = 1000
BACKUP_FILE_PREFIX = "hub-backup-"
BACKUP_FILE_SUFFIX = ".jsonl.gz"


def _public_source(described: dict[str, Any]) -> dict[str, Any]:
    """The backend's description without anything that could be a credential."""
    return {k: v for k, v in described.items() if "token" not in k and "password" not in k}


def select_items(items: list[KeyValue]) -> tuple[list[KeyValue], int]:
    """The keys a backup keeps and how many lease-bound ones it leaves out."""
    dropped_instances: set[str] = set()
    kept: list[KeyValue] = []
    skipped = 0
    for kv in items:
        if kv.lease is not None or kv.key.startswith(LEADER_PREFIX):
            skipped += 1
            if kv.key.startswith(CATALOG_PREFIX):
                dropped_instances.add(kv.key[len(CATALOG_PREFIX) :])
            continue
        if kv.key in (RESTORE_SCRATCH_KEY, MAINTENANCE_KEY):
            # A backup taken during a migration must not bring the target up read-only.
            continue
        kept.append(kv)
    # Health of an instance that is not kept would describe nothing after a restore.
    final = [
        kv
        for kv in kept
        if not (
            kv.key.startswith(HEALTH_PREFIX) and kv.key[len(HEALTH_PREFIX) :] in dropped_instances
        )
    ]
    return final, skipped + (len(kept) - len(final))


async def read_audit(backend: Backend) -> list[AuditRecord]:
    """Every audit record the backend keeps, oldest first."""
    records: list[AuditRecord] = []
    before: str | None = None
    while True:
        page = await backend.query_audit(AuditQuery(before=before, limit=AUDIT_PAGE))
        records.extend(page)
        if len(page) < AUDIT_PAGE:
            break
        before = str(page[-1]["id"])
    records.reverse()
    return records


async def create_backup(backend: Backend, *, include_audit: bool = False) -> Backup:
    """A snapshot of ``backend`` at one revision, as a :class:`Backup` (not yet written)."""
    snapshot = await backend.snapshot()
    items, skipped = select_items(snapshot.items)
    audit: list[AuditRecord] = []
    if include_audit:
        with contextlib.suppress(NotImplementedError):
            audit = await read_audit(backend)
    by_prefix: dict[str, int] = {}
    for kv in items:
        top = kv.key.split("/", 1)[0]
        by_prefix[top] = by_prefix.get(top, 0) + 1
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "source_backend": backend.name,
        "source": _public_source(backend.describe()),
        "revision": snapshot.revision,
        "created_at": iso_utc(),
        "consistency": backend.snapshot_consistency,
        "leases": LEASES_NOTE,
        "counts": {
            "keys": len(items),
            "by_prefix": dict(sorted(by_prefix.items())),
            "audit_records": len(audit),
            "skipped_leased": skipped,
        },
    }
    return Backup(header=header, items=items, audit=audit)


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore wrote."""

    keys: int
    audit_records: int
    revisions_kept: bool
    atomic: bool
    source_revision: int
    target_revision: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form (printed by the CLI)."""
        return {
            "keys": self.keys,
            "audit_records": self.audit_records,
            "revisions_kept": self.revisions_kept,
            "atomic": self.atomic,
            "source_revision": self.source_revision,
            "target_revision": self.target_revision,
        }


async def restore_backup(
    backend: Backend, backup: Backup, *, force: bool = False, include_audit: bool = True
) -> RestoreReport:
    """Write a verified backup into ``backend`` (empty, unless ``force`` replaces it).

    The file was verified entirely by :func:`~facade.coordination.backup_file.read_backup`
    before this is called, so a bad file never gets here. Audit records are appended
    after the keys (the audit log is append-only; ids already present are kept once on
    the embedded store).
    """
    report = await backend.load(backup.items, replace=force)
    audit = 0
    if include_audit and backup.audit:
        await backend.append_audit(backup.audit)
        audit = len(backup.audit)
    return RestoreReport(
        keys=report.keys,
        audit_records=audit,
        revisions_kept=report.revisions_kept,
        atomic=report.atomic,
        source_revision=backup.revision,
        target_revision=await backend.current_revision(),
    )


def backup_file_name(backup: Backup) -> str:
    """``hub-backup-<UTC time>-r<revision>.jsonl.gz``: names sort by time."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{BACKUP_FILE_PREFIX}{stamp}-r{backup.revision}{BACKUP_FILE_SUFFIX}"


class BackupScheduler:
    """Scheduled backups into a directory, keeping the newest ``keep`` files.

    Runs only on the replica elected for the ``backup`` role (a :class:`LeaderElection`
    on the same backend), so replicas sharing a backend write one backup per interval,
    not one each; a new leader starts its own schedule.
    """

    def __init__(
        self,
        backend: Backend,
        directory: Path,
        *,
        interval: float,
        keep: int,
        include_audit: bool = False,
        leader_ttl: int = 10,
    ) -> None:
        self.backend = backend
        self.directory = directory
        self.interval = interval
        self.keep = keep
        self.include_audit = include_audit
        self.last_file: Path | None = None
        self.last_error: str | None = None
        self.runs = 0
        self._task: asyncio.Task[None] | None = None
        self.election = LeaderElection(
            backend, "backup", ttl=leader_ttl, on_elected=self._elected, on_demoted=self._demoted
        )

    async def start(self) -> None:
        """Campaign for the ``backup`` role; back up while elected."""
        await self.election.start()

    async def stop(self) -> None:
        """Stop backing up and release the role."""
        await self.election.stop()
        await self._demoted()

    async def _elected(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scheduled-backups")

    async def _demoted(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except (HubError, OSError) as exc:
                self.last_error = str(exc)
                log.error("scheduled backup failed: %s", exc)

    async def run_once(self) -> Path:
        """Write one backup now and apply the retention; return the new file."""
        backup = await create_backup(self.backend, include_audit=self.include_audit)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / backup_file_name(backup)
        await asyncio.to_thread(write_backup, backup, path)
        self.last_file, self.last_error = path, None
        self.runs += 1
        self.prune()
        log.info("backup written: %s (revision %d)", path, backup.revision)
        return path

    def prune(self) -> list[Path]:
        """Delete all but the newest ``keep`` backup files of this directory."""
        files = sorted(
            p
            for p in self.directory.glob(f"{BACKUP_FILE_PREFIX}*{BACKUP_FILE_SUFFIX}")
            if p.is_file()
        )
        doomed = files[: max(0, len(files) - self.keep)]
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return doomed

    def describe(self) -> dict[str, Any]:
        """For ``/health``-style answers."""
        return {
            **self.election.describe(),
            "directory": str(self.directory),
            "interval_seconds": self.interval,
            "keep": self.keep,
            "runs": self.runs,
            "last_file": str(self.last_file) if self.last_file else None,
            "last_error": self.last_error,
        }
