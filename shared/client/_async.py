"""The asyncio hub client (``AsyncHubClient``), for FastAPI services and other async code.

Same operations and semantics as :class:`shared.client.HubClient`; both are thin
senders around :class:`shared.client._core.ClientCore`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx

from shared.client._core import (
    Call,
    ClientCore,
    ConfigSnapshot,
    Discovery,
    Endpoint,
    Registration,
    RetryPolicy,
    SSEDecoder,
    registration_body,
)
from shared.errors import HubError, HubUnavailable
from shared.tenancy import TenantContext

T = TypeVar("T")


class AsyncHubClient:
    """Async twin of :class:`shared.client.HubClient` (same arguments, awaitable calls).

    ``transport`` takes an ``httpx.AsyncBaseTransport``; ``http_client`` an
    ``httpx.AsyncClient``; ``sleep`` an async sleep.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:7000",
        *,
        tenant: TenantContext | None = None,
        forward_ambient_tenant: bool = False,
        token: str | None = None,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        service_name: str | None = None,
        cache_ttl: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.core = ClientCore(
            tenant=tenant,
            forward_ambient_tenant=forward_ambient_tenant,
            token=token,
            retry=retry,
            service_name=service_name,
            cache_ttl=cache_ttl,
        )
        self._owns_http = http_client is None
        self.http = http_client or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, transport=transport
        )
        self._sleep = sleep

    async def __aenter__(self) -> AsyncHubClient:
        """The client itself."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the connections."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections (only if this client created them)."""
        if self._owns_http:
            await self.http.aclose()

    @property
    def base_url(self) -> str:
        """The hub's base URL."""
        return str(self.http.base_url).rstrip("/")

    async def execute(self, call: Call[T]) -> T:
        """Send one call with the retry policy; parse the answer or raise a HubError."""
        cached = self.core.fresh_answer(call)
        if cached is not None:
            return cached
        attempt = 0
        while True:
            try:
                response = await self.http.request(**self.core.request_kwargs(call))
            except httpx.TransportError as exc:
                delay = self.core.retry_delay_after_transport_error(call, exc, attempt)
                if delay is None:
                    return self.core.give_up(call, exc, attempt + 1)
            else:
                delay = self.core.retry_delay_after_response(call, response, attempt)
                if delay is None:
                    return self.core.result(call, response)
            await self._sleep(delay)
            attempt += 1

    # -- registration ---------------------------------------------------------------

    async def register(self, name: str, host: str, port: int, **fields: Any) -> Registration:
        """Register one instance (see :func:`registration_body` for the fields)."""
        body = registration_body(name, host, port, **fields)
        return await self.execute(self.core.register(body))

    async def register_service(self, registration: Mapping[str, Any]) -> Registration:
        """Register from a ready body, as in the spec's ``register_service({...})``."""
        return await self.execute(self.core.register(registration))

    async def heartbeat(
        self, service: str, instance_id: str, load: float | None = None
    ) -> dict[str, Any]:
        """Renew the instance's TTL; raises InstanceNotFound/LeaseNotFound once expired."""
        return await self.execute(self.core.heartbeat(service, instance_id, load))

    async def deregister(self, service: str, instance_id: str) -> dict[str, Any]:
        """Remove the instance from discovery now."""
        return await self.execute(self.core.deregister(service, instance_id))

    # -- discovery ------------------------------------------------------------------

    async def discover(
        self, service: str, *, tenant: TenantContext | None = None, strategy: str | None = None
    ) -> Discovery:
        """Where to call ``service``; the last good answer (stale) if the hub is down."""
        return await self.execute(self.core.discover(service, tenant, strategy))

    async def list_services(
        self, *, tenant: TenantContext | None = None, legacy_mode: bool = False
    ) -> dict[str, Any]:
        """Services the tenant context may use (``{"services": {...}, "count", "stale"}``)."""
        return await self.execute(self.core.list_services(tenant, legacy_mode=legacy_mode))

    async def get_service(self, service: str) -> dict[str, Any]:
        """One service with all of its instances."""
        return await self.execute(self.core.describe(service))

    async def get_load_balanced_endpoint(
        self, service: str, strategy: str | None = None, *, tenant: TenantContext | None = None
    ) -> Endpoint:
        """One instance picked by the hub (the spec's ``get_load_balanced_endpoint``)."""
        return await self.execute(self.core.endpoint(service, strategy, tenant))

    # -- config ---------------------------------------------------------------------

    async def get_config(
        self,
        tenant_id: str | None,
        *,
        index: int | None = None,
        wait: float | None = None,
        tenant: TenantContext | None = None,
    ) -> ConfigSnapshot:
        """A tenant's effective config (``None``: the global layer); with ``index``, block
        until it changes past that version (or ``wait`` seconds pass)."""
        call = self.core.get_config(tenant_id, index=index, wait=wait, tenant=tenant)
        return await self.execute(call)

    async def watch_config(
        self,
        tenant_id: str | None,
        *,
        wait: float = 30.0,
        tenant: TenantContext | None = None,
    ) -> AsyncIterator[ConfigSnapshot]:
        """Yield the current config, then each new version, by long polling.

        Runs until the consumer stops iterating or its task is cancelled. While the hub
        is unreachable it keeps retrying with backoff.
        """
        watch = self.core.config_watch(tenant_id, wait, tenant)
        while True:
            try:
                snapshot = await self.execute(watch.next_call())
            except HubUnavailable:
                await self._sleep(watch.backoff())
                continue
            if watch.accept(snapshot):
                yield snapshot

    async def stream_config(
        self,
        tenant_id: str | None,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = 60.0,
        tenant: TenantContext | None = None,
        transport: Literal["sse", "websocket"] = "sse",
    ) -> AsyncIterator[ConfigSnapshot]:
        """Yield config versions as the hub pushes them (server-sent events, or with
        ``transport="websocket"`` the tenant's ``/config/{tenant_id}/ws``).

        The first event is the current version. Ends when the hub closes the stream;
        reconnect with ``last_event_id`` set to the last version seen to get what was
        missed (``watch_config`` is the long-polling alternative that reconnects by
        itself). Over a WebSocket, a refused handshake or the hub ending the push (token
        revoked, tenant removed) raises the hub's error.
        """
        if transport == "websocket":
            async for pushed in self._socket_config(tenant_id, last_event_id, tenant):
                yield pushed
            return
        decoder = SSEDecoder()
        request = self.core.config_stream_request(
            tenant_id, last_event_id=last_event_id, read_timeout=read_timeout, tenant=tenant
        )
        async with self.http.stream(**request) as response:
            if not response.is_success:
                await response.aread()
                raise self.core.error_for(response)
            async for line in response.aiter_lines():
                snapshot = self.core.config_event(decoder.feed(line), tenant_id)
                if snapshot is not None:
                    yield snapshot

    async def _socket_config(
        self, tenant_id: str | None, last_version: int | None, tenant: TenantContext | None
    ) -> AsyncIterator[ConfigSnapshot]:
        """The WebSocket half of :meth:`stream_config` (needs the ``websockets`` package)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        if tenant_id is None:
            raise ValueError("WebSocket config push is per tenant; use SSE for the global layer")
        url, headers = self.core.config_socket(
            str(self.http.base_url), tenant_id, last_version=last_version, tenant=tenant
        )
        try:
            async with connect(url, additional_headers=headers, open_timeout=10) as socket:
                with contextlib.suppress(ConnectionClosed):
                    async for frame in socket:
                        snapshot = self.core.config_frame(frame, tenant_id)
                        if snapshot is not None:
                            yield snapshot
        except InvalidStatus as exc:
            # The hub refused the handshake with a standard error body (401, 403, 422...).
            raise self.core.socket_refused(exc.response.status_code, exc.response.body) from None
        except OSError as exc:
            raise HubUnavailable(f"cannot reach the hub: {exc}") from exc

    async def update_global_config(
        self, changes: Mapping[str, Any], *, replace: bool = False, if_match: int | None = None
    ) -> dict[str, Any]:
        """Change the global config layer (the spec's ``update_global_config``): a JSON merge
        patch, or with ``replace`` the whole layer. Needs a token that may configure."""
        call = self.core.write_config(None, changes, replace=replace, if_match=if_match)
        return await self.execute(call)

    async def update_tenant_config(
        self,
        tenant_id: str,
        changes: Mapping[str, Any],
        *,
        replace: bool = False,
        if_match: int | None = None,
    ) -> dict[str, Any]:
        """Change a tenant's overrides (merge patch, or with ``replace`` all of them)."""
        call = self.core.write_config(tenant_id, changes, replace=replace, if_match=if_match)
        return await self.execute(call)

    # -- circuits, quotas, errors, health -------------------------------------------

    async def report_outcome(
        self,
        service: str,
        *,
        success: bool,
        latency_ms: float | None = None,
        tier: str | None = None,
    ) -> dict[str, Any]:
        """Tell the hub how a direct call to ``service`` went (feeds its circuit)."""
        call = self.core.report_outcome(service, success=success, latency_ms=latency_ms, tier=tier)
        return await self.execute(call)

    async def get_circuit(
        self, service: str, *, tenant: TenantContext | None = None
    ) -> dict[str, Any]:
        """The hub's circuits of ``service``: every tier's, and ``state`` for the caller's."""
        return await self.execute(self.core.circuit(service, tenant))

    async def get_circuit_state(
        self, service: str, *, tier: str | None = None, tenant: TenantContext | None = None
    ) -> str:
        """``"CLOSED"``, ``"OPEN"`` or ``"HALF_OPEN"`` (the spec's ``get_circuit_state``):
        the circuit of ``tier``, else of the caller's tier."""
        body = await self.get_circuit(service, tenant=tenant)
        return self.core.circuit_state(body, tier)

    async def check_quota(
        self, tenant_id: str, resource_type: str, amount: int = 1
    ) -> dict[str, Any]:
        """Whether the tenant may use ``amount`` more of ``resource_type``."""
        return await self.execute(self.core.quota("check", tenant_id, resource_type, amount))

    async def allocate_quota(
        self, tenant_id: str, resource_type: str, amount: int = 1
    ) -> dict[str, Any]:
        """Take ``amount``; raises QuotaExceeded (429) over the limit."""
        return await self.execute(self.core.quota("allocate", tenant_id, resource_type, amount))

    async def release_quota(
        self, tenant_id: str, resource_type: str, amount: int = 1
    ) -> dict[str, Any]:
        """Give ``amount`` back."""
        return await self.execute(self.core.quota("release", tenant_id, resource_type, amount))

    async def report_error(self, report: Any) -> dict[str, Any] | None:
        """Send an ErrorDNA analysis (or its dict) to the hub; ``None`` if not accepted."""
        body = report.to_dict() if hasattr(report, "to_dict") else dict(report)
        try:
            return await self.execute(self.core.report_error(body))
        except HubError:
            return None

    async def top_errors(
        self, service: str | None = None, tenant_id: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        """The hub's most frequent error groups."""
        return await self.execute(self.core.top_errors(service, tenant_id, limit))

    async def coordinate_deployment(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Start a rollout, exactly as the spec calls it::

            await central_hub.coordinate_deployment({
                "service": "trading-engine", "version": "v2.1.0",
                "strategy": "rolling", "batch_size": 2,
            })

        Returns the deployment (``id``, ``plan``, ``state``); raises DeploymentActive
        (409) while the service has another active deployment. Needs an admin token.
        """
        return await self.execute(self.core.coordinate_deployment(request))

    async def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        """A deployment's plan, state and events."""
        return await self.execute(self.core.deployment(deployment_id))

    async def control_deployment(self, deployment_id: str, action: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``abort`` a deployment."""
        return await self.execute(self.core.deployment_action(deployment_id, action))

    async def health(self) -> dict[str, Any]:
        """The hub's own health report."""
        return await self.execute(self.core.health())
