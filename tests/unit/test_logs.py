"""Structured JSON logging with tenant and correlation context."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared.logs import (
    JsonFormatter,
    configure_logging,
    current_correlation_id,
    log_context,
    set_service_name,
)
from shared.tenancy import TenantContext


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("test-json-logs")
    logger.propagate = False
    configure_logging("central-hub", "DEBUG", stream=stream, logger=logger)
    yield logger, stream
    logger.handlers.clear()
    logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_spec_extra_usage(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info(
        "Service discovery request",
        extra={
            "tenant_id": "company_abc",
            "user_id": "user123",
            "subscription_tier": "pro",
            "services_returned": 5,
            "response_time_ms": 12,
        },
    )
    (line,) = lines(stream)
    assert line["message"] == "Service discovery request"
    assert line["level"] == "INFO"
    assert line["service"] == "central-hub"
    assert line["tenant_id"] == "company_abc"
    assert line["services_returned"] == 5
    assert str(line["timestamp"]).endswith("Z")


def test_context_is_carried_and_extra_wins(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    ctx = TenantContext(tenant_id="t1", user_id="u1", tier="enterprise", correlation_id="req_1")
    with log_context(ctx, operation="discover"):
        assert current_correlation_id() == "req_1"
        logger.warning("inside")
        logger.warning("override", extra={"tenant_id": "t2"})
    logger.warning("outside")
    inside, override, outside = lines(stream)
    assert inside["tenant_id"] == "t1"
    assert inside["correlation_id"] == "req_1"
    assert inside["subscription_tier"] == "enterprise"
    assert inside["operation"] == "discover"
    assert override["tenant_id"] == "t2"
    assert "tenant_id" not in outside
    assert "operation" not in outside


def test_context_follows_async_tasks(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    async def handle(tenant: str) -> None:
        with log_context(TenantContext(tenant_id=tenant, correlation_id=f"c-{tenant}")):
            await asyncio.sleep(0)  # interleave the two requests
            logger.info("handled")

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(main())
    got = {(line["tenant_id"], line["correlation_id"]) for line in lines(stream)}
    assert got == {("a", "c-a"), ("b", "c-b")}


def test_exceptions_are_structured(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ConnectionRefusedError("Connection refused")
    except ConnectionRefusedError:
        logger.exception("call failed")
    (line,) = lines(stream)
    exc = line["exception"]
    assert isinstance(exc, dict)
    assert exc["type"] == "ConnectionRefusedError"
    assert "Traceback" in exc["traceback"]


def test_configure_twice_keeps_one_handler() -> None:
    logger = logging.getLogger("test-json-logs-twice")
    logger.propagate = False
    try:
        configure_logging("svc", stream=io.StringIO(), logger=logger)
        configure_logging("svc", stream=io.StringIO(), logger=logger)
        assert len(logger.handlers) == 1
    finally:
        logger.handlers.clear()
        logger.propagate = True


def test_formatter_falls_back_to_its_service_name() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    # a fresh context has no service name set (like a thread the service did not start)
    fresh = contextvars.Context()
    line = json.loads(fresh.run(JsonFormatter("fallback-svc").format, record))
    assert line["message"] == "hello world"
    assert line["service"] == "fallback-svc"
    named = contextvars.Context()
    named.run(set_service_name, "from-context")
    assert json.loads(named.run(JsonFormatter("fallback-svc").format, record))["service"] == (
        "from-context"
    )
