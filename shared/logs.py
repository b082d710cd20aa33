"""Structured JSON logging that carries the request's tenant and correlation ids.

The context of the work in progress (service name, tenant id, user id, subscription
tier, correlation id) lives in context variables, so it follows a request through
``await`` points and into tasks it starts, and every log line written meanwhile carries
it without passing it around::

    configure_logging("trading-engine")
    with log_context(TenantContext(tenant_id="company_abc", user_id="user123")):
        logger.info("Service discovery request", extra={"services_returned": 5})

prints one JSON object per line with ``timestamp``, ``level``, ``logger``, ``message``,
``service``, ``tenant_id``, ``user_id``, ``subscription_tier``, ``correlation_id`` and
the ``extra`` fields (which win over the context when both name a field, so the spec's
``logger.info("...", extra={"tenant_id": ...})`` works as written).

The module is called ``logs`` rather than ``logging`` so it never shadows the standard
library's module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import datetime
from typing import IO, Any

from shared.tenancy import TenantContext
from shared.timestamps import iso_utc

_service_name: ContextVar[str | None] = ContextVar("hub_service_name", default=None)
_tenant: ContextVar[TenantContext | None] = ContextVar("hub_tenant_context", default=None)
_fields: ContextVar[Mapping[str, Any] | None] = ContextVar("hub_log_fields", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def set_service_name(name: str) -> None:
    """Name the service for every log line of this process (and its tasks)."""
    _service_name.set(name)


def current_service_name() -> str | None:
    """The service name set for this context, if any."""
    return _service_name.get()


def current_tenant_context() -> TenantContext | None:
    """The tenant context of the work in progress, if any."""
    return _tenant.get()


def current_correlation_id() -> str | None:
    """The correlation id of the work in progress, if any."""
    ctx = _tenant.get()
    return ctx.correlation_id if ctx else None


def new_correlation_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


@contextlib.contextmanager
def log_context(
    tenant: TenantContext | None = None, **fields: Any
) -> Iterator[TenantContext | None]:
    """Bind a tenant context and extra fields to every log line inside the block.

    Fields nest: an inner block adds to (and may override) the outer block's fields.
    """
    tenant_token: Token[TenantContext | None] | None = None
    if tenant is not None:
        tenant_token = _tenant.set(tenant)
    fields_token = _fields.set({**(_fields.get() or {}), **fields}) if fields else None
    try:
        yield _tenant.get()
    finally:
        if fields_token is not None:
            _fields.reset(fields_token)
        if tenant_token is not None:
            _tenant.reset(tenant_token)


def bind_tenant(tenant: TenantContext | None) -> Token[TenantContext | None]:
    """Set the tenant context without a block; undo with :func:`reset_tenant`.

    For middleware whose start and end are separate callbacks.
    """
    return _tenant.set(tenant)


def reset_tenant(token: Token[TenantContext | None]) -> None:
    """Undo a :func:`bind_tenant`."""
    _tenant.reset(token)


def context_fields() -> dict[str, Any]:
    """The fields the current context contributes to a log line (``None`` when unset)."""
    ctx = _tenant.get()
    return {
        "service": _service_name.get(),
        "tenant_id": ctx.tenant_id if ctx else None,
        "user_id": ctx.user_id if ctx else None,
        "subscription_tier": ctx.tier if ctx else None,
        "correlation_id": ctx.correlation_id if ctx else None,
        **(_fields.get() or {}),
    }


def _json_default(value: Any) -> Any:
    """JSON form of values json cannot encode itself."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line.

    Context fields that are unset are left out rather than written as ``null``, to keep
    lines short; ``extra`` fields always appear.
    """

    def __init__(self, service_name: str | None = None) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``."""
        line: dict[str, Any] = {
            "timestamp": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = context_fields()
        if context.get("service") is None:
            context["service"] = self.service_name
        line.update({k: v for k, v in context.items() if v is not None})
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["exception"] = {
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": self.formatException(record.exc_info),
            }
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=_json_default, ensure_ascii=False)


class _OurHandler(logging.StreamHandler):
    """Marks the handler :func:`configure_logging` installed, so a second call replaces it."""


def configure_logging(
    service_name: str,
    level: int | str = "INFO",
    *,
    stream: IO[str] | None = None,
    logger: logging.Logger | None = None,
) -> logging.Logger:
    """Send JSON lines for ``logger`` (default: the root logger) to ``stream`` (stderr).

    Idempotent: calling it again replaces the handler it installed before instead of
    adding a second one. Returns the logger named after the service.
    """
    set_service_name(service_name)
    target = logger if logger is not None else logging.getLogger()
    for handler in list(target.handlers):
        if isinstance(handler, _OurHandler):
            target.removeHandler(handler)
    handler = _OurHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service_name))
    target.addHandler(handler)
    target.setLevel(level.upper() if isinstance(level, str) else level)
    return logging.getLogger(service_name)


def json_logging_configured(logger: logging.Logger | None = None) -> bool:
    """Whether :func:`configure_logging` has installed its handler on ``logger`` (root)."""
    target = logger if logger is not None else logging.getLogger()
    return any(isinstance(handler, _OurHandler) for handler in target.handlers)


def get_logger(name: str) -> logging.Logger:
    """A standard logger; with :func:`configure_logging` its lines are JSON with context."""
    return logging.getLogger(name)
