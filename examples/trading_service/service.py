"""The example trading service: routes and hooks."""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Float, Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from proto.common import base_pb2
from proto.trading import orders_pb2
from shared.base_service import BackupRequest, BaseService, ServiceConfig
from shared.client import ConfigSnapshot
from shared.errors import HubError, InvalidRequest
from shared.logs import current_tenant_context
from shared.messages import unwrap, wrap
from shared.patterns import DatabaseSettings, StandardDatabaseManager, TenantScoped

SERVICE_NAME = "order-intake"
MIN_VOLUME = 0.01
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./order-intake.db"


class Base(DeclarativeBase):
    """The service's tables."""


class OrderRecord(TenantScoped, Base):
    """An accepted order, one tenant's row (row-level security on PostgreSQL)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)


class OrderIn(BaseModel):
    """An order as clients submit it."""

    symbol: str = Field(min_length=1, max_length=32)
    side: Literal["buy", "sell"]
    quantity: float
    price: float | None = None


def build_config(**overrides: Any) -> ServiceConfig:
    """The service's config from the development templates plus ``overrides``."""
    return ServiceConfig.from_environment(SERVICE_NAME, version="1.0.0", **overrides)


class TradingService(BaseService):
    """Takes orders, checks them, publishes them; follows its tenant's config."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        backup_dir: Path | None = None,
        database_url: str = DEFAULT_DATABASE_URL,
    ) -> None:
        # Takes part in system-wide backups: the hub calls POST /backup with one backup
        # id for every service; this one saves the orders it published.
        super().__init__(config, backup_hook=self.back_up)
        self.backup_dir = backup_dir or Path(tempfile.gettempdir()) / "order-intake-backups"
        # SQLite for development; a postgresql+asyncpg:// URL gets row-level security.
        self.database = StandardDatabaseManager(
            DatabaseSettings(database_url), tracker=self.tracker
        )
        self.in_flight = 0
        self.max_in_flight = 100
        self.rate_limits: dict[str, Any] = {}
        self.features: dict[str, Any] = {}
        self.config_changes = 0
        self.published: list[bytes] = []

    async def on_start(self) -> None:
        """Connect to the database (retrying), create the table and its tenant policy."""
        assert self.database is not None
        await self.database.connect()
        async with self.database.admin_session() as session:
            connection = await session.connection()
            await connection.run_sync(Base.metadata.create_all)
        await self.database.enable_row_level_security(OrderRecord.__tablename__)

    async def on_stop(self) -> None:
        """Close the database pool."""
        if self.database is not None:
            await self.database.close()

    async def on_config_change(self, snapshot: ConfigSnapshot) -> None:
        """Hot reload: apply the tenant's new limits and feature flags."""
        self.rate_limits = dict(snapshot.config.get("rate_limits") or {})
        self.features = dict(snapshot.config.get("features") or {})
        self.config_changes += 1
        self.logger.info(
            "config applied", extra={"config_version": snapshot.version, **self.rate_limits}
        )

    def current_load(self) -> float:
        """In-flight orders relative to what this instance is sized for."""
        return min(1.0, self.in_flight / self.max_in_flight)

    def health_details(self) -> dict[str, Any]:
        """Orders published and config reloads, for operators."""
        return {"orders_published": len(self.published), "config_changes": self.config_changes}

    async def back_up(self, request: BackupRequest) -> str:
        """Write the published envelopes of this instance to one file per backup id."""
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        path = self.backup_dir / f"{request.backup_id}-epoch{request.epoch}.json"
        orders = [base64.b64encode(wire).decode("ascii") for wire in self.published]
        payload = {"service": request.service, "backup_id": request.backup_id, "orders": orders}
        await asyncio.to_thread(path.write_text, json.dumps(payload))
        return path.as_uri()

    def validate(self, order: OrderIn) -> None:
        """Reject volumes the venue would reject (raises ValueError)."""
        steps = round(order.quantity / MIN_VOLUME, 6)
        if order.quantity < MIN_VOLUME or steps != int(steps):
            raise ValueError(
                f"Invalid volume {order.quantity} for symbol '{order.symbol}' "
                f"(min {MIN_VOLUME}, step {MIN_VOLUME})"
            )

    async def risk_check(self, order: OrderIn) -> dict[str, Any]:
        """Ask risk-management directly (found through the hub) whether to accept."""
        try:
            found = await self.client.discover("risk-management")
        except HubError as exc:
            return {"checked": False, "reason": exc.code}
        if not found.recommended_endpoint:
            return {"checked": False, "reason": "no_healthy_endpoint"}
        tenant = current_tenant_context()
        async with httpx.AsyncClient(timeout=2.0) as http:
            response = await http.post(
                f"{found.recommended_endpoint}/risk/validate",
                json=order.model_dump(),
                headers=tenant.to_headers() if tenant else None,
            )
        return {"checked": True, "stale": found.stale, **response.json()}

    def publish(self, order: OrderIn, tenant_id: str | None, user_id: str | None) -> bytes:
        """Serialize the accepted order into a MessageEnvelope (what goes on the bus)."""
        message = orders_pb2.Order(
            order_id=uuid.uuid4().hex,
            user_id=user_id or "",
            tenant_id=tenant_id or "",
            symbol=order.symbol,
            side=orders_pb2.ORDER_SIDE_BUY if order.side == "buy" else orders_pb2.ORDER_SIDE_SELL,
            type=orders_pb2.ORDER_TYPE_LIMIT if order.price else orders_pb2.ORDER_TYPE_MARKET,
            quantity=order.quantity,
            price=order.price or 0.0,
            status=orders_pb2.ORDER_STATUS_ACCEPTED,
            created_at=time.time_ns() // 1_000_000,
        )
        tenant = current_tenant_context()
        envelope = wrap(
            message,
            service_source=self.config.service_name,
            user_id=user_id or "",
            correlation_id=tenant.correlation_id if tenant else None,
        )
        wire = envelope.SerializeToString()
        self.published.append(wire)
        return wire

    async def store(self, order: OrderIn, wire: bytes) -> str:
        """Keep the accepted order in the caller's tenant's rows (TenantContextRequired,
        403, without a tenant: orders always belong to one)."""
        assert self.database is not None
        published = unwrap(base_pb2.MessageEnvelope.FromString(wire))
        assert isinstance(published, orders_pb2.Order)
        async with self.database.tenant_session() as session:
            session.add(
                OrderRecord(
                    order_id=published.order_id,
                    symbol=order.symbol,
                    side=order.side,
                    quantity=order.quantity,
                    price=order.price,
                )
            )
        return published.order_id

    def build_app(self) -> FastAPI:
        """The FastAPI app: /orders, /errors, /performance, /config and /health.

        Every route answers in the StandardResponse envelope (``{"data", "meta"}``, the
        app's default response class) or the hub's error shape."""
        app = self.create_app()

        @app.post("/orders")
        async def submit_order(order: OrderIn, request: Request) -> Response:
            tenant = current_tenant_context()
            context = {
                "operation": "order_intake",
                "symbol": order.symbol,
                "tenant_id": tenant.tenant_id if tenant else None,
            }
            self.in_flight += 1
            try:
                with self.tracker.measure("order_intake"):
                    try:
                        self.validate(order)
                    except ValueError as e:
                        analysis = self.error_dna.analyze_error(
                            error_message=str(e), context=context
                        )
                        self.logger.warning(
                            "order rejected",
                            extra={
                                "error_fingerprint": analysis.fingerprint,
                                "suggested_actions": analysis.suggested_actions,
                            },
                        )
                        # The standard error shape (StandardResponse's handler answers 422).
                        raise InvalidRequest(
                            str(e),
                            details={
                                "analysis": {
                                    "fingerprint": analysis.fingerprint,
                                    "category": analysis.category,
                                    "severity": analysis.severity,
                                    "suggested_actions": analysis.suggested_actions,
                                }
                            },
                        ) from e
                    risk = await self.risk_check(order)
                    wire = self.publish(
                        order,
                        tenant.tenant_id if tenant else None,
                        tenant.user_id if tenant else None,
                    )
                    order_id = await self.store(order, wire)
            finally:
                self.in_flight -= 1
            return self.responses.success(
                {
                    "status": "accepted",
                    "order_id": order_id,
                    "risk": risk,
                    "envelope": base64.b64encode(wire).decode("ascii"),
                },
                status_code=201,
            )

        @app.get("/orders")
        async def list_orders() -> list[dict[str, Any]]:
            """The caller's tenant's accepted orders (never another tenant's)."""
            assert self.database is not None
            async with self.database.tenant_session() as session:
                rows = (await session.scalars(select(OrderRecord).order_by(OrderRecord.id))).all()
            return [
                {"order_id": r.order_id, "symbol": r.symbol, "side": r.side, "quantity": r.quantity}
                for r in rows
            ]

        @app.get("/errors")
        async def error_groups() -> dict[str, Any]:
            return {"groups": [g.to_dict() for g in self.error_dna.top_groups(20)]}

        @app.get("/performance")
        async def performance() -> dict[str, Any]:
            return self.tracker.snapshot()

        @app.get("/config")
        async def current_config() -> dict[str, Any]:
            snap = self.config_snapshot
            return {
                "version": snap.version if snap else None,
                "config": snap.config if snap else None,
                "rate_limits": self.rate_limits,
                "features": self.features,
                "changes": self.config_changes,
            }

        return app
