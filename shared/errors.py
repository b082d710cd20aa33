"""The hub's one exception hierarchy.

Every failure the hub reports has a stable ``code``. The server maps each class to an
HTTP status once (``facade.errors``) and renders ``{"error": {"code", "message",
"details"}}``; clients turn that body back into the same class with
:func:`error_from_payload`. Backends translate their own errors into these classes at
their edge, so nothing above the backend interface sees an etcd or SQLite exception.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HubError(Exception):
    """Base of every error the hub raises or reports.

    Attributes:
        code: stable machine-readable identifier, part of the public API.
        message: human-readable explanation; never contains secrets.
        details: structured context (field errors, limits, retry hints).
    """

    code: ClassVar[str] = "hub_error"

    def __init__(self, message: str = "", *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details: dict[str, Any] = details or {}

    def to_payload(self) -> dict[str, Any]:
        """The standard error body for this error."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidRequest(HubError):
    """The request is malformed or fails validation."""

    code = "invalid_request"


class MalformedJSON(InvalidRequest):
    """The request body is not valid JSON."""

    code = "malformed_json"


class PayloadTooLarge(InvalidRequest):
    """The request body exceeds the configured limit."""

    code = "payload_too_large"


class HeadersTooLarge(InvalidRequest):
    """The request's headers exceed the configured limit."""

    code = "headers_too_large"


class DuplicateHeader(InvalidRequest):
    """A header that decides who the caller is came more than once with different values.

    ``Authorization`` may come only once; ``x-tenant-id``, ``x-company-id``,
    ``x-subscription-tier`` and ``x-user-id`` may repeat only with the same value. A proxy
    that appends instead of replacing would otherwise decide who the caller is.
    """

    code = "duplicate_header"


class Unauthorized(HubError):
    """No valid credentials were presented."""

    code = "unauthorized"


class Forbidden(HubError):
    """The caller is known but not allowed to do this."""

    code = "forbidden"


class TierNotAllowed(Forbidden):
    """The caller's subscription tier may not use the requested service."""

    code = "tier_not_allowed"


class TenantHeadersNotAllowed(Forbidden):
    """The caller's token may not assert tenant context headers."""

    code = "tenant_headers_not_allowed"


class TenantMismatch(Forbidden):
    """A tenant-bound token addressed another tenant's data."""

    code = "tenant_mismatch"


class TenantContextRequired(Forbidden):
    """Tenant-scoped work (e.g. a tenant database session) was asked for without a tenant."""

    code = "tenant_context_required"


class NotFound(HubError):
    """The addressed resource does not exist."""

    code = "not_found"


class ServiceNotFound(NotFound):
    """No service of that name is registered."""

    code = "service_not_found"


class InstanceNotFound(NotFound):
    """No instance with that id is registered under the service."""

    code = "instance_not_found"


class TenantNotFound(NotFound):
    """No tenant with that id is provisioned."""

    code = "tenant_not_found"


class ConfigVersionNotFound(NotFound):
    """The configuration history holds no such version (never written, or pruned)."""

    code = "config_version_not_found"


class WebhookNotFound(NotFound):
    """No config webhook with that id is registered."""

    code = "webhook_not_found"


class WorkflowNotFound(NotFound):
    """No coordination workflow with that id is defined."""

    code = "workflow_not_found"


class DeploymentNotFound(NotFound):
    """No deployment with that id exists."""

    code = "deployment_not_found"


class LeaseNotFound(NotFound):
    """The lease does not exist or has already expired."""

    code = "lease_not_found"


class Conflict(HubError):
    """The request conflicts with the current state."""

    code = "conflict"


class RevisionConflict(Conflict):
    """A compare-and-set found a different revision than expected."""

    code = "revision_conflict"


class TenantExists(Conflict):
    """A tenant with that id is already provisioned."""

    code = "tenant_exists"


class DeploymentActive(Conflict):
    """The service already has an active deployment, or the deployment's state forbids
    the requested transition."""

    code = "deployment_conflict"


class QuotaReleaseExceedsUsage(Conflict):
    """A release asked to free more of a resource than the tenant holds."""

    code = "quota_release_exceeds_usage"


class PreconditionFailed(HubError):
    """An ``If-Match`` precondition did not hold."""

    code = "precondition_failed"


class RateLimited(HubError):
    """Too many requests; ``details.retry_after`` says when to try again."""

    code = "rate_limited"


class QuotaExceeded(RateLimited):
    """A tenant resource quota would be exceeded."""

    code = "quota_exceeded"


class ServiceUnavailable(HubError):
    """The service exists but nothing can be recommended right now; retry later."""

    code = "service_unavailable"


class NoHealthyEndpoint(ServiceUnavailable):
    """Every instance of the service is critical."""

    code = "no_healthy_endpoint"


class ReadOnly(ServiceUnavailable):
    """The hub is in maintenance (read-only) mode: writes are refused, nothing was written.

    ``details`` holds the operator's ``reason``, ``since`` and ``retry_after`` (seconds,
    also sent as ``Retry-After``). Reads, streams and heartbeats keep working; retry the
    write later (``central-hub migrate`` turns the mode off when its copy is done).
    """

    code = "read_only"


class CircuitOpen(ServiceUnavailable):
    """The service's circuit is OPEN for the caller's tier; ``details.retry_at`` says until when."""

    code = "circuit_open"


class DatabaseUnavailable(ServiceUnavailable):
    """A service's database could not be reached (after the connection retries)."""

    code = "database_unavailable"


class BackendUnavailable(HubError):
    """The state backend cannot be reached; reads may still be served stale."""

    code = "backend_unavailable"


class NoQuorum(BackendUnavailable):
    """The backend cluster has lost quorum and refuses writes."""

    code = "backend_no_quorum"


class BackendTimeout(BackendUnavailable):
    """The backend did not answer in time."""

    code = "backend_timeout"


class BackendPermissionDenied(HubError):
    """The backend refused the hub's credentials (e.g. a Consul ACL token)."""

    code = "backend_permission_denied"


class RevisionCompacted(HubError):
    """A watch asked for history the backend has already compacted away."""

    code = "revision_compacted"


class HubUnavailable(HubError):
    """Client side: the hub could not be reached at all."""

    code = "hub_unavailable"


HTTP_STATUS_BY_ERROR: dict[type[HubError], int] = {
    InvalidRequest: 422,
    MalformedJSON: 400,
    DuplicateHeader: 400,
    PayloadTooLarge: 413,
    HeadersTooLarge: 431,
    Unauthorized: 401,
    Forbidden: 403,
    BackendPermissionDenied: 502,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    RateLimited: 429,
    ServiceUnavailable: 503,
    BackendUnavailable: 503,
    RevisionCompacted: 503,
    HubError: 500,
}
"""The HTTP status of each error class; a class without an entry takes its nearest
ancestor's. Shared by the hub (``facade.errors``) and services' ``StandardResponse``, so
one code always travels with one status."""


def http_status_for(error: HubError | type[HubError]) -> int:
    """The HTTP status of a hub error or error class (its nearest ancestor in the table)."""
    cls = error if isinstance(error, type) else type(error)
    for base in cls.__mro__:
        if base in HTTP_STATUS_BY_ERROR:
            return HTTP_STATUS_BY_ERROR[base]
    return 500


def _all_error_classes() -> list[type[HubError]]:
    found: list[type[HubError]] = []
    pending: list[type[HubError]] = [HubError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def error_class_for(code: str) -> type[HubError] | None:
    """The error class with this stable code, including subclasses defined elsewhere."""
    return {cls.code: cls for cls in _all_error_classes()}.get(code)


def error_from_payload(payload: Any, *, fallback_message: str = "") -> HubError:
    """Rebuild the hub exception described by a standard error body.

    Unknown codes (from a newer hub) become a plain :class:`HubError` that keeps the code.
    """
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict):
        return HubError(fallback_message or "unexpected error response")
    code = str(body.get("code", "hub_error"))
    cls = error_class_for(code)
    message = str(body.get("message", fallback_message))
    details = body.get("details") if isinstance(body.get("details"), dict) else None
    if cls is None:
        err = HubError(message, details=details)
        err.code = code  # type: ignore[misc]
        return err
    return cls(message, details=details)
