"""Clients of the hub's HTTP API: :class:`HubClient` (blocking) and
:class:`AsyncHubClient` (asyncio), built on one shared core.

Both keep the last good discovery answer per service and tenant context and serve it
(marked ``stale``) while the hub is unreachable; retry with bounded backoff and jitter;
raise the typed exceptions of :mod:`shared.errors` for the hub's error answers
(:class:`~shared.errors.HubUnavailable` when it cannot be reached at all); and send the
tenant context and a correlation id with every call.

This package needs only ``httpx``: a service can install it without the hub server.
"""

from shared.client._async import AsyncHubClient
from shared.client._core import (
    NO_RETRY,
    Call,
    ClientCore,
    ConfigSnapshot,
    ConfigWatch,
    Discovery,
    Endpoint,
    Registration,
    RetryPolicy,
    ServerSentEvent,
    SSEDecoder,
    registration_body,
)
from shared.client._sync import HubClient

__all__ = [
    "NO_RETRY",
    "AsyncHubClient",
    "Call",
    "ClientCore",
    "ConfigSnapshot",
    "ConfigWatch",
    "Discovery",
    "Endpoint",
    "HubClient",
    "Registration",
    "RetryPolicy",
    "SSEDecoder",
    "ServerSentEvent",
    "registration_body",
]
