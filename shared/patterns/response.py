"""StandardResponse: the envelope every platform service answers with.

Success: ``{"data": ..., "meta": {"correlation_id", "tenant_id", "service", "version"}}``.
Errors: the hub's own shape ``{"error": {"code", "message", "details"}}`` with the status
of :data:`shared.errors.HTTP_STATUS_BY_ERROR`, so a caller's :func:`error_from_payload`
turns a service's error back into the same exception class as the hub's.

The correlation and tenant ids come from the request's bound tenant context
(``BaseService``'s middleware binds it from the headers), so route code passes only data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from shared.errors import HubError, InvalidRequest, MalformedJSON, error_class_for, http_status_for
from shared.logs import current_tenant_context

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.responses import JSONResponse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """The ``meta`` block of a success envelope."""

    correlation_id: str | None
    tenant_id: str | None
    service: str
    version: str


class StandardResponse:
    """Builds the envelopes of one service and installs them into a FastAPI app.

    Args:
        service: the service's name, in every ``meta``.
        version: the service's version, in every ``meta``.

    ``install(app)`` adds exception handlers (hub errors, validation errors, HTTP errors,
    anything unexpected as a 500 ``hub_error`` that hides the exception text);
    ``response_class`` wraps whatever a route returns into the success envelope (use it
    as FastAPI's ``default_response_class`` or a route's ``response_class``).
    """

    def __init__(self, service: str, version: str) -> None:
        self.service = service
        self.version = version
        self._response_class: type[JSONResponse] | None = None

    @property
    def response_class(self) -> type[JSONResponse]:
        """A JSONResponse class rendering route results in this service's envelope
        (built on first use, so services without Starlette can still build envelopes)."""
        if self._response_class is None:
            self._response_class = self._make_response_class()
        return self._response_class

    def meta(self) -> ResponseMeta:
        """The meta of the work in progress (bound tenant context, this service)."""
        ctx = current_tenant_context()
        return ResponseMeta(
            correlation_id=ctx.correlation_id if ctx else None,
            tenant_id=ctx.tenant_id if ctx else None,
            service=self.service,
            version=self.version,
        )

    def envelope(self, data: Any) -> dict[str, Any]:
        """The success body around ``data``."""
        return {"data": data, "meta": asdict(self.meta())}

    @staticmethod
    def error_body(error: HubError) -> dict[str, Any]:
        """The error body of ``error`` (the hub's shape)."""
        return error.to_payload()

    def success(self, data: Any, *, status_code: int = 200) -> JSONResponse:
        """A success answer: ``data`` in the envelope."""
        from starlette.responses import JSONResponse

        return JSONResponse(self.envelope(data), status_code=status_code)

    def error(self, error: HubError, *, status_code: int | None = None) -> JSONResponse:
        """An error answer with the hub's status for the error's class (unless
        ``status_code`` says otherwise) and ``Retry-After`` when the error carries
        ``retry_after``."""
        from starlette.responses import JSONResponse

        headers = {}
        retry_after = error.details.get("retry_after")
        if isinstance(retry_after, int | float):
            headers["Retry-After"] = str(max(1, round(retry_after)))
        return JSONResponse(
            self.error_body(error),
            status_code=status_code or http_status_for(error),
            headers=headers,
        )

    def install(self, app: FastAPI) -> None:
        """Answer every exception of ``app`` in the standard error shape."""
        from fastapi import Request
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException

        async def on_hub_error(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, HubError)
            return self.error(exc)

        async def on_validation(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, RequestValidationError)
            return self.error(validation_error(exc.errors()))

        async def on_http(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, HTTPException)
            error = http_error(exc.status_code, str(exc.detail))
            return self.error(error, status_code=exc.status_code)

        async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
            # The exception text may hold secrets or internals: log it, answer generically.
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return self.error(HubError("internal error; the service's log has the details"))

        app.add_exception_handler(HubError, on_hub_error)
        app.add_exception_handler(RequestValidationError, on_validation)
        app.add_exception_handler(HTTPException, on_http)
        app.add_exception_handler(Exception, on_unexpected)

    def _make_response_class(self) -> type[JSONResponse]:
        """A JSONResponse subclass that renders any content as this service's envelope."""
        from starlette.responses import JSONResponse

        standard = self

        class EnvelopeResponse(JSONResponse):
            """Renders route results as ``{"data", "meta"}``."""

            standard_response: ClassVar[StandardResponse] = standard

            def render(self, content: Any) -> bytes:
                """Wrap ``content`` unless it is already an envelope or an error body."""
                if isinstance(content, dict) and set(content) in ({"data", "meta"}, {"error"}):
                    return super().render(content)
                return super().render(standard.envelope(content))

        return EnvelopeResponse


# HTTP statuses Starlette raises itself (404 unknown route, 405...) and their codes.
_CODE_BY_STATUS = {400: "bad_request", 405: "method_not_allowed", 406: "not_acceptable"}


def http_error(status: int, message: str) -> HubError:
    """The hub error for an HTTP status raised outside the hub's classes (the answer
    keeps ``status``; the code is the hub's for that status, else a generic one)."""
    by_status = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        412: "precondition_failed",
        413: "payload_too_large",
        422: "invalid_request",
        429: "rate_limited",
        503: "service_unavailable",
    }
    cls = error_class_for(by_status.get(status, ""))
    if cls is not None:
        return cls(message)
    err = HubError(message)
    err.code = _CODE_BY_STATUS.get(status, "http_error")  # type: ignore[misc]
    return err


def validation_error(problems: Sequence[Any]) -> HubError:
    """The hub error for FastAPI's request validation errors (422, or 400 for bad JSON)."""
    fields = [
        {
            "field": ".".join(str(p) for p in p.get("loc", ()) if p != "body") or "body",
            "problem": p.get("msg", "invalid"),
            "type": p.get("type", "invalid"),
        }
        for p in problems
        if isinstance(p, dict)
    ]
    if any(f["type"] == "json_invalid" for f in fields):
        return MalformedJSON("the request body is not valid JSON", details={"errors": fields})
    return InvalidRequest("the request failed validation", details={"errors": fields})
