"""StandardDatabaseManager against a real PostgreSQL (row-level security keyed on
``SET LOCAL app.tenant_id``) and SQLite (the same API, isolation by ORM filter only)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Integer, String, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.errors import DatabaseUnavailable, TenantContextRequired, TenantMismatch
from shared.logs import bind_tenant, reset_tenant
from shared.patterns import DatabaseSettings, StandardDatabaseManager, TenantScoped
from shared.performance import PerformanceTracker
from shared.tenancy import TenantContext
from tests.conftest import free_port
from tests.postgres_server import PostgresServer, postgres_bin_dir


class Base(DeclarativeBase):
    pass


class Order(TenantScoped, Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
            "scripts/ensure_test_services.sh installs Debian's postgresql when run as root"
        )
    server = PostgresServer(bin_dir).start()
    try:
        yield server.url
    finally:
        server.stop()


async def open_db(url: str, tracker: PerformanceTracker | None = None) -> StandardDatabaseManager:
    # pool_size 1: every session reuses one connection, so a tenant setting that leaked
    # past its transaction would show in the next session
    db = StandardDatabaseManager(
        DatabaseSettings(url, pool_size=1, max_overflow=0), tracker=tracker
    )
    await db.connect()
    async with db.admin_session() as session:
        conn = await session.connection()
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    await db.enable_row_level_security("orders")
    return db


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[StandardDatabaseManager]:
    db = await open_db(postgres_url, PerformanceTracker("orders", registry=CollectorRegistry()))
    try:
        yield db
    finally:
        await db.close()


async def seed(db: StandardDatabaseManager) -> None:
    async with db.tenant_session("tenant_a") as a:
        a.add_all([Order(symbol="EURUSD"), Order(symbol="GBPUSD")])
    async with db.tenant_session("tenant_b") as b:
        b.add(Order(symbol="XAUUSD"))


async def test_a_tenant_never_reads_or_writes_another_tenants_rows(
    pg: StandardDatabaseManager,
) -> None:
    await seed(pg)
    async with pg.tenant_session("tenant_a") as a:
        orm = (await a.scalars(select(Order))).all()
        assert sorted(o.symbol for o in orm) == ["EURUSD", "GBPUSD"]
        # raw SQL is held by the database's policy, not by our filter
        assert (await a.execute(text("SELECT count(*) FROM orders"))).scalar() == 2
        others = await a.execute(text("SELECT * FROM orders WHERE tenant_id = 'tenant_b'"))
        assert others.all() == []
        updated = await a.execute(text("UPDATE orders SET symbol = 'HACK' WHERE tenant_id <> ''"))
        assert updated.rowcount == 2  # its own two rows only
        deleted = await a.execute(text("DELETE FROM orders WHERE tenant_id = 'tenant_b'"))
        assert deleted.rowcount == 0
    async with pg.tenant_session("tenant_b") as b:
        rows = (await b.execute(text("SELECT tenant_id, symbol FROM orders"))).all()
        assert [tuple(r) for r in rows] == [("tenant_b", "XAUUSD")]


async def test_writing_into_another_tenant_is_refused(pg: StandardDatabaseManager) -> None:
    with pytest.raises(DBAPIError, match="row-level security"):
        async with pg.tenant_session("tenant_a") as a:
            await a.execute(
                text("INSERT INTO orders (tenant_id, symbol) VALUES ('tenant_b', 'EURUSD')")
            )
    with pytest.raises(TenantMismatch):
        async with pg.tenant_session("tenant_a") as a:
            a.add(Order(tenant_id="tenant_b", symbol="EURUSD"))
    async with pg.tenant_session("tenant_b") as b:
        assert (await b.execute(text("SELECT count(*) FROM orders"))).scalar() == 0


async def test_no_tenant_context_no_rows(pg: StandardDatabaseManager) -> None:
    await seed(pg)
    with pytest.raises(TenantContextRequired):
        async with pg.tenant_session():
            pass
    # the request's bound tenant context is used when none is passed
    token = bind_tenant(TenantContext(tenant_id="tenant_b"))
    try:
        async with pg.tenant_session() as bound:
            assert (await bound.execute(text("SELECT count(*) FROM orders"))).scalar() == 1
    finally:
        reset_tenant(token)
    # a connection without the setting (the pool's only one, just used by tenant_b) sees
    # no tenant rows: SET LOCAL ended with the transaction, and the policy denies by default
    async with pg.engine.connect() as raw:
        assert (await raw.execute(text("SELECT count(*) FROM orders"))).scalar() == 0


async def test_health_and_metrics(pg: StandardDatabaseManager) -> None:
    health = await pg.health()
    assert health["status"] == "healthy"
    assert health["dialect"] == "postgresql"
    assert health["row_level_security"] is True
    async with pg.tenant_session("tenant_a"):
        pass
    assert pg.tracker is not None
    assert pg.tracker.stats("db.tenant_session").count >= 1


async def test_connect_retries_then_reports_unavailable() -> None:
    url = f"postgresql+asyncpg://app:x@127.0.0.1:{free_port()}/app"
    db = StandardDatabaseManager(DatabaseSettings(url, connect_attempts=2, retry_base=0.01))
    with pytest.raises(DatabaseUnavailable) as refused:
        await db.connect()
    assert refused.value.details["attempts"] == 2


async def test_sqlite_has_the_same_api_with_isolation_by_filter_only(tmp_path: Path) -> None:
    db = await open_db(f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}")
    try:
        assert db.enforces_isolation_in_database is False
        assert await db.enable_row_level_security("orders") is False
        await seed(db)
        async with db.tenant_session("tenant_a") as a:
            orm = (await a.scalars(select(Order))).all()
            assert sorted(o.symbol for o in orm) == ["EURUSD", "GBPUSD"]
            assert (await a.scalar(select(func.count()).select_from(Order))) == 2
            # documented as weaker: raw SQL is not filtered on SQLite
            assert (await a.execute(text("SELECT count(*) FROM orders"))).scalar() == 3
        with pytest.raises(TenantContextRequired):
            async with db.tenant_session():
                pass
        assert (await db.health())["status"] == "healthy"
    finally:
        await db.close()
