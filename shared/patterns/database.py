"""StandardDatabaseManager: tenant-isolated database access for platform services.

The spec's "Database Layer: multi-tenant data isolation", enforced **in the database**
on PostgreSQL: every tenant session runs in one transaction that starts with
``set_config('app.tenant_id', <tenant>, true)`` (the parameterised form of ``SET LOCAL
app.tenant_id``), and each tenant table carries a row-level security policy
(:meth:`StandardDatabaseManager.enable_row_level_security`) that admits only rows whose
tenant column equals that setting, for reads *and* writes, forced on the table's owner
too. So even a raw SQL statement in tenant A's session never reads or writes tenant B's
rows, and a connection without the setting sees no tenant rows at all. (Superusers and
roles with BYPASSRLS skip every policy: services must connect as an ordinary role.)

SQLite (development) has no row-level security: the same API isolates **by filter** —
ORM queries on :class:`TenantScoped` models get ``tenant_id = <tenant>`` added and new
objects get the session's tenant — but raw SQL is not filtered. That is weaker and meant
for development only.

Needs the ``db`` extra (``pip install 'central-hub[db]'``: SQLAlchemy with asyncio,
asyncpg, aiosqlite).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria

from shared.backoff import jittered_delay
from shared.errors import (
    DatabaseUnavailable,
    InvalidRequest,
    TenantContextRequired,
    TenantMismatch,
)
from shared.logs import current_tenant_context
from shared.performance import PerformanceTracker

log = logging.getLogger(__name__)

TENANT_SETTING = "app.tenant_id"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class TenantScoped:
    """Mixin for ORM models holding one tenant's rows (a ``tenant_id`` column).

    Tenant sessions filter queries on these models by the session's tenant and stamp
    new objects with it (on every dialect; on PostgreSQL row-level security also holds
    for raw SQL)."""

    tenant_id: Mapped[str] = mapped_column(String(128), index=True)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Engine, pool and retry settings (defaults suit a small service).

    Attributes:
        url: SQLAlchemy async URL, e.g. ``postgresql+asyncpg://app@db/orders`` or
            ``sqlite+aiosqlite:///./dev.db``.
        pool_size, max_overflow, pool_timeout: the connection pool (PostgreSQL).
        connect_attempts: tries of the first connection before DatabaseUnavailable.
        retry_base, retry_cap: jittered exponential backoff between tries (seconds).
    """

    url: str
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    connect_attempts: int = 5
    retry_base: float = 0.2
    retry_cap: float = 5.0
    echo: bool = False


class StandardDatabaseManager:
    """Async engine and pool, tenant sessions, row-level security, health and metrics.

    Usage::

        db = StandardDatabaseManager(DatabaseSettings(url), tracker=service.tracker)
        await db.connect()                      # retries with backoff
        await db.enable_row_level_security("orders")
        async with db.tenant_session("company_abc") as session:   # or the bound tenant
            session.add(Order(symbol="EURUSD"))                     # tenant_id stamped
            rows = (await session.execute(text("SELECT * FROM orders"))).all()  # A's only
        await db.close()
    """

    def __init__(
        self, settings: DatabaseSettings | str, *, tracker: PerformanceTracker | None = None
    ) -> None:
        self.settings = DatabaseSettings(settings) if isinstance(settings, str) else settings
        self.tracker = tracker
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    # -- connection ----------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """``postgresql`` or ``sqlite`` (from the URL)."""
        return self.settings.url.split(":", 1)[0].split("+", 1)[0]

    @property
    def enforces_isolation_in_database(self) -> bool:
        """Whether tenant isolation holds for raw SQL too (PostgreSQL row-level security)."""
        return self.dialect == "postgresql"

    @property
    def engine(self) -> AsyncEngine:
        """The engine (after :meth:`connect`)."""
        if self._engine is None:
            raise RuntimeError("StandardDatabaseManager.connect() has not run")
        return self._engine

    async def connect(self) -> None:
        """Create the engine and pool and wait for the database, retrying with jittered
        backoff; DatabaseUnavailable after ``connect_attempts`` failures."""
        s = self.settings
        options: dict[str, Any] = {"echo": s.echo, "pool_pre_ping": True}
        if self.dialect != "sqlite":
            options |= {
                "pool_size": s.pool_size,
                "max_overflow": s.max_overflow,
                "pool_timeout": s.pool_timeout,
            }
        self._engine = create_async_engine(s.url, **options)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        last: Exception | None = None
        for attempt in range(max(1, s.connect_attempts)):
            try:
                async with self._engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except (OperationalError, DBAPIError, OSError) as exc:
                last = exc
                delay = jittered_delay(attempt, s.retry_base, s.retry_cap)
                log.warning(
                    "database not reachable, retrying",
                    extra={"attempt": attempt + 1, "retry_in_seconds": round(delay, 3)},
                )
                if attempt + 1 < s.connect_attempts:
                    await asyncio.sleep(delay)
        await self._engine.dispose()
        self._engine = self._sessions = None
        raise DatabaseUnavailable(
            f"the database did not answer after {s.connect_attempts} attempts: "
            f"{type(last).__name__}",
            details={"dialect": self.dialect, "attempts": s.connect_attempts},
        )

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._sessions = None

    # -- tenant sessions -----------------------------------------------------------

    @asynccontextmanager
    async def tenant_session(self, tenant_id: str | None = None) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, scoped to ``tenant_id`` (default: the bound
        tenant context of the request). Commits on success, rolls back on error.

        Raises TenantContextRequired (403) without a tenant: there is no unscoped
        tenant session (use :meth:`admin_session` for schema work).
        """
        if tenant_id is None:
            ctx = current_tenant_context()
            tenant_id = ctx.tenant_id if ctx else None
        if not tenant_id:
            raise TenantContextRequired(
                "a tenant database session needs a tenant context (x-tenant-id)"
            )
        if self._sessions is None:
            raise RuntimeError("StandardDatabaseManager.connect() has not run")
        started = time.perf_counter()
        ok = False
        try:
            async with self._sessions() as session, session.begin():
                session.info["tenant_id"] = tenant_id
                if self.dialect == "postgresql":
                    # Transaction-local (SET LOCAL): it ends with the transaction, so a
                    # pooled connection never carries one tenant into the next session.
                    await session.execute(
                        text("SELECT set_config(:name, :tenant, true)"),
                        {"name": TENANT_SETTING, "tenant": tenant_id},
                    )
                yield session
            ok = True
        finally:
            if self.tracker is not None:
                self.tracker.record("db.tenant_session", time.perf_counter() - started, success=ok)

    @asynccontextmanager
    async def admin_session(self) -> AsyncIterator[AsyncSession]:
        """An unscoped session in one transaction, for migrations and schema work only."""
        if self._sessions is None:
            raise RuntimeError("StandardDatabaseManager.connect() has not run")
        async with self._sessions() as session, session.begin():
            yield session

    async def enable_row_level_security(self, table: str, column: str = "tenant_id") -> bool:
        """Create the tenant isolation policy of ``table`` (idempotent).

        On PostgreSQL: row-level security enabled and forced (the owner too), and a
        policy admitting, for every command, only rows whose ``column`` equals
        ``current_setting('app.tenant_id')``. Returns False on SQLite, which has no
        row-level security (isolation there is the ORM filter only).
        """
        for name in (table, column):
            if not _IDENTIFIER.match(name):
                raise InvalidRequest(f"not a plain SQL identifier: {name!r}")
        if self.dialect != "postgresql":
            return False
        check = f"{column} = current_setting('{TENANT_SETTING}', true)"
        statements = [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
            f"CREATE POLICY tenant_isolation ON {table} USING ({check}) WITH CHECK ({check})",
        ]
        async with self.admin_session() as session:
            for statement in statements:
                await session.execute(text(statement))
        return True

    # -- health --------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``{"status", "dialect", "latency_ms", "row_level_security"}`` from one
        ``SELECT 1`` (BaseService's ``health_details`` can include it)."""
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            status = "healthy"
        except (OperationalError, DBAPIError, OSError, RuntimeError) as exc:
            status = f"unhealthy: {type(exc).__name__}"
        latency = time.perf_counter() - started
        if self.tracker is not None:
            self.tracker.record("db.health", latency, success=status == "healthy")
        return {
            "status": status,
            "dialect": self.dialect,
            "latency_ms": round(latency * 1000, 3),
            "row_level_security": self.enforces_isolation_in_database,
        }


@event.listens_for(Session, "do_orm_execute")
def _filter_by_tenant(state: ORMExecuteState) -> None:
    """Add ``tenant_id = <session's tenant>`` to ORM queries on TenantScoped models."""
    tenant = state.session.info.get("tenant_id")
    if tenant is None or not (state.is_select or state.is_update or state.is_delete):
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped, lambda cls: cls.tenant_id == tenant, include_aliases=True
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, flush_context: Any, instances: Any) -> None:
    """New TenantScoped objects belong to the session's tenant; another tenant's is refused."""
    tenant = session.info.get("tenant_id")
    if tenant is None:
        return
    for obj in session.new:
        if isinstance(obj, TenantScoped):
            current = getattr(obj, "tenant_id", None)
            if current is None:
                obj.tenant_id = tenant
            elif current != tenant:
                raise TenantMismatch(
                    f"cannot write a row of tenant {current!r} in tenant {tenant!r}'s session"
                )
