"""Where hub errors become HTTP answers: one status table, one error shape.

Every error the hub answers is ``{"error": {"code", "message", "details"}}`` with a 4xx
or 5xx status taken from :data:`STATUS_BY_ERROR` (most specific class wins).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facade.responses import json_response
from shared import errors as e

log = logging.getLogger("central_hub.errors")

STATUS_BY_ERROR: dict[type[e.HubError], int] = {
    e.InvalidRequest: 422,
    e.MalformedJSON: 400,
    e.DuplicateHeader: 400,
    e.PayloadTooLarge: 413,
    e.HeadersTooLarge: 431,
    e.Unauthorized: 401,
    e.Forbidden: 403,
    e.BackendPermissionDenied: 502,
    e.NotFound: 404,
    e.Conflict: 409,
    e.PreconditionFailed: 412,
    e.RateLimited: 429,
    e.ServiceUnavailable: 503,
    e.BackendUnavailable: 503,
    e.RevisionCompacted: 503,
    e.HubError: 500,
}

_CODE_BY_HTTP_STATUS = {
    400: "bad_request",
    401: e.Unauthorized.code,
    403: e.Forbidden.code,
    404: e.NotFound.code,
    405: "method_not_allowed",
    406: "not_acceptable",
    413: e.PayloadTooLarge.code,
    415: "unsupported_media_type",
}


def status_for_class(error_class: type[e.HubError]) -> int:
    """The HTTP status of a hub error class (its nearest ancestor in the table)."""
    for cls in error_class.__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def status_for(error: e.HubError) -> int:
    """The HTTP status of a hub error."""
    return status_for_class(type(error))


def error_doc(*classes: type[e.HubError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the errors a route answers, grouped by status."""
    docs: dict[int | str, dict[str, Any]] = {}
    for cls in classes:
        entry = docs.setdefault(status_for_class(cls), {"description": ""})
        entry["description"] = ", ".join(filter(None, [entry["description"], cls.code]))
    return docs


def error_response(error: e.HubError) -> Any:
    """The standard error answer for ``error``."""
    headers = {}
    retry_after = error.details.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(float(retry_after))))
    return json_response(error.to_payload(), status_code=status_for(error), headers=headers)


def _validation_details(exc: RequestValidationError) -> tuple[e.HubError, list[dict[str, Any]]]:
    problems: list[dict[str, Any]] = []
    malformed = False
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            malformed = True
        problems.append(
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
                "problem": err.get("msg", "invalid"),
                "type": err.get("type", "invalid"),
            }
        )
    if malformed:
        return e.MalformedJSON("the request body is not valid JSON"), problems
    return e.InvalidRequest("the request failed validation"), problems


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the one error shape."""

    @app.exception_handler(e.HubError)
    async def hub_error(request: Request, exc: e.HubError) -> Any:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        error, problems = _validation_details(exc)
        error.details = {"errors": problems}
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": str(exc.detail), "details": {}}}
        return json_response(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(e.HubError("internal error; the hub's log has the details"))


class RequestLimits:
    """Refuses oversized headers (431), oversized bodies (413) and over-deep JSON (400).

    Bodies are read up to ``max_body_bytes`` (checking ``Content-Length`` first, then
    counting chunks), inspected for nesting depth without being parsed, and replayed to
    the app, so no handler ever sees a body over the limits.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_bytes: int,
        max_json_depth: int,
        path_body_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Routes whose bodies are legitimately larger (telemetry batches).
        self.path_body_limits = path_body_limits or {}
        self.max_header_bytes = max_header_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or ()
        error = self._header_error(headers)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.path_body_limits.get(scope.get("path", ""), self.max_body_bytes)
        body, error = await self._checked_body(headers, receive, limit)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, _replaying(body, receive), send)

    def _header_error(self, headers: Iterable[tuple[bytes, bytes]]) -> e.HubError | None:
        """431 when the request headers (name, value and framing) exceed the limit."""
        header_bytes = sum(len(k) + len(v) + 4 for k, v in headers)
        if header_bytes <= self.max_header_bytes:
            return None
        return e.HeadersTooLarge(
            f"the request headers exceed {self.max_header_bytes} bytes",
            details={"max_header_bytes": self.max_header_bytes},
        )

    def _declares_too_large(self, headers: Iterable[tuple[bytes, bytes]], limit: int) -> bool:
        """Whether a ``Content-Length`` is unreadable or over the limit (any of them)."""
        for name, value in headers:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
                if declared < 0 or declared > limit:
                    return True
        return False

    async def _checked_body(
        self, headers: Iterable[tuple[bytes, bytes]], receive: Receive, limit: int
    ) -> tuple[bytes, e.HubError | None]:
        """The request body, and the error to answer instead when it breaks a limit."""
        if self._declares_too_large(headers, limit):
            return b"", self._too_large(limit)
        body = await self._read_body(receive, limit)
        if body is None:
            return b"", self._too_large(limit)
        return body, self._body_error(body)

    @staticmethod
    def _too_large(limit: int) -> e.HubError:
        return e.PayloadTooLarge(
            f"the request body exceeds {limit} bytes", details={"max_bytes": limit}
        )

    @staticmethod
    async def _read_body(receive: Receive, limit: int) -> bytes | None:
        """The whole body (what arrived, if the client went away), or ``None`` once the
        chunks exceed ``limit``."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _body_error(self, body: bytes) -> e.HubError | None:
        """400 for JSON nested deeper than the limit or holding a lone surrogate escape."""
        openers = body.count(b"[") + body.count(b"{")
        if openers > self.max_json_depth and json_nesting_depth(body) > self.max_json_depth:
            return e.InvalidRequest(
                f"the JSON body nests deeper than {self.max_json_depth} levels",
                details={"max_json_depth": self.max_json_depth},
            )
        surrogate_at = lone_surrogate_path(body)
        if surrogate_at is not None:
            return e.InvalidRequest(
                "the JSON body holds a lone UTF-16 surrogate escape, which is not a character",
                details={"errors": [{"field": surrogate_at, "problem": "lone UTF-16 surrogate"}]},
            )
        return None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the already-read ``body`` as one message, then
    passes on to the real one (a disconnect, for instance)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def json_nesting_depth(body: bytes) -> int:
    """The deepest ``[``/``{`` nesting in a JSON text, ignoring brackets inside strings."""
    if body.count(b"[") + body.count(b"{") <= 1:
        return body.count(b"[") + body.count(b"{")
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogate_path(body: bytes) -> str | None:
    """Where a JSON body holds a lone UTF-16 surrogate (``"\\ud800"``), or ``None``.

    JSON parsers accept such escapes, but the text is not Unicode: it cannot be stored or
    answered as UTF-8 (orjson refuses it). Paired surrogates (an escaped emoji) are fine.
    Bodies that are not JSON are left to the route, which answers them as malformed.
    """
    if _SURROGATE_ESCAPE.search(body) is None:  # the common case: no parse at all
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return _surrogate_in(doc, "")


def _surrogate_in(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return None if _is_unicode(value) else path or "body"
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        name = str(key) if _is_unicode(str(key)) else "<key>"
        inner = f"{path}.{name}" if path else name
        if name == "<key>":
            return inner
        found = _surrogate_in(item, inner)
        if found is not None:
            return found
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
