"""The example trading service: routes and hooks."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from proto.trading import orders_pb2
from shared.base_service import BaseService, ServiceConfig
from shared.client import ConfigSnapshot
from shared.errors import HubError, InvalidRequest
from shared.logs import current_tenant_context
from shared.messages import wrap

SERVICE_NAME = "order-intake"
MIN_VOLUME = 0.01


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

    def __init__(self, config: ServiceConfig) -> None:
        super().__init__(config)
        self.in_flight = 0
        self.max_in_flight = 100
        self.rate_limits: dict[str, Any] = {}
        self.features: dict[str, Any] = {}
        self.config_changes = 0
        self.published: list[bytes] = []

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
            finally:
                self.in_flight -= 1
            return self.responses.success(
                {
                    "status": "accepted",
                    "risk": risk,
                    "envelope": base64.b64encode(wire).decode("ascii"),
                },
                status_code=201,
            )

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
