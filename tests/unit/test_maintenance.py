"""Read-only mode without HTTP: what is allowed, the refusal, and the in-flight drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from facade.coordination.maintenance import MAINTENANCE_KEY, MaintenanceMode, is_allowed
from facade.errors import status_for
from facade.state.view import StateView
from shared.errors import ReadOnly, error_from_payload
from tests.conftest import BackendFactory


@pytest.fixture
async def mode(embedded_backend_factory: BackendFactory) -> AsyncIterator[MaintenanceMode]:
    """A mode over a real embedded store and a started view of it."""
    backend = await embedded_backend_factory()
    view = StateView(backend)
    await view.start(backend_open=True, timeout=5)
    yield MaintenanceMode(backend, view, drain_timeout=0.2)
    await view.stop()
    await backend.close()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/config/acme", True),
        ("HEAD", "/services/", True),
        ("PUT", "/services/quotes/instances/i-1/heartbeat", True),
        ("POST", "/services/discover", True),
        ("POST", "/coordination/workflow/checkout", True),
        ("PUT", "/coordination/workflows/checkout", False),
        ("POST", "/deployments", False),
        ("POST", "/tenants/acme/resources/storage/check", True),
        ("POST", "/tenants/acme/resources/storage/allocate", False),
        ("PUT", "/admin/maintenance", True),
        ("DELETE", "/admin/maintenance", True),
        ("POST", "/services/register", False),
        ("DELETE", "/services/quotes/instances/i-1", False),
        ("PUT", "/services/quotes/instances/i-1/heartbeat/x", False),
        ("POST", "/services/quotes/instances/i-1/heartbeat", False),
        ("PUT", "/config", False),
        ("POST", "/some/route/added/later", False),
    ],
)
def test_allowed_routes(method: str, path: str, allowed: bool) -> None:
    assert is_allowed(method, path) is allowed


async def test_refusal_carries_reason_and_retry_after(mode: MaintenanceMode) -> None:
    assert mode.refusal("POST", "/tenants") is None
    await mode.enable(reason="moving", retry_after=4, by="t1")
    refusal = mode.refusal("POST", "/tenants")
    assert isinstance(refusal, ReadOnly)
    assert status_for(refusal) == 503
    assert refusal.details["reason"] == "moving"
    assert refusal.details["retry_after"] == 4
    # The client library turns the answer back into the same class.
    assert isinstance(error_from_payload(refusal.to_payload()), ReadOnly)
    assert mode.refusal("PUT", "/services/s/instances/i/heartbeat") is None
    await mode.disable()
    assert mode.refusal("POST", "/tenants") is None
    assert await mode.backend.get(MAINTENANCE_KEY) is None


async def test_enable_waits_for_writes_already_accepted(mode: MaintenanceMode) -> None:
    mode.write_started()  # a write that passed the check before the mode went on
    enabling = asyncio.create_task(mode.enable(reason="copy", retry_after=5, by=None))
    for _ in range(200):  # bounded: until this replica's view refuses writes
        if mode.refusal("POST", "/tenants") is not None:
            break
        await asyncio.sleep(0.01)
    assert mode.refusal("POST", "/tenants") is not None
    assert not enabling.done()  # still waiting for the write in flight
    mode.write_finished()
    answer = await enabling
    assert answer["replica"]["drained"] is True
    assert answer["replica"]["in_flight_writes"] == 0


async def test_enable_reports_a_drain_that_did_not_finish(mode: MaintenanceMode) -> None:
    mode.write_started()
    answer = await mode.enable(reason="copy", retry_after=5, by=None)
    assert answer["replica"]["drained"] is False
    assert answer["replica"]["in_flight_writes"] == 1
    mode.write_finished()


async def test_an_unreadable_record_still_means_read_only(mode: MaintenanceMode) -> None:
    revision = await mode.backend.put(MAINTENANCE_KEY, b"not json")
    await mode.view.wait_for(revision, 5)
    refusal = mode.refusal("PATCH", "/config")
    assert refusal is not None
    assert refusal.details["reason"] == "unreadable maintenance record"
