"""Fixtures shared by every suite.

Backends: each backend kind has a fixture ``<kind>_backend_factory`` that returns an async
callable building a fresh, opened backend with its own empty keyspace. The ``backend_kind``
parameter runs a test once per kind (see ``tests/conformance``); kinds whose real store
cannot be started here are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters import Backend
from adapters.sqlite import SQLiteBackend
from tests.consul_agent import ConsulDevAgent, consul_binary
from tests.etcd_cluster import EtcdCluster, live_clusters

BackendFactory = Callable[[], Awaitable[Backend]]

BACKEND_KINDS = ["embedded", "etcd", "consul", "consul-contract"]

_LIVE_CONSUL_AGENTS: list[ConsulDevAgent] = []


@pytest.fixture
def embedded_backend_factory(tmp_path: Path) -> BackendFactory:
    counter = iter(range(1_000_000))

    async def make() -> Backend:
        backend = SQLiteBackend(tmp_path / f"store-{next(counter)}", poll_interval=0.02)
        await backend.open()
        return backend

    return make


@pytest.fixture(scope="session")
def consul_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live Consul agent's HTTP address for the whole session.

    ``CONSUL_HTTP_ADDR`` when set; otherwise a ``consul agent -dev`` started here on free
    loopback ports (stopped by its PID at the end) when the binary is installed; otherwise
    the live Consul tests are skipped, saying why.
    """
    address = os.environ.get("CONSUL_HTTP_ADDR")
    if address:
        yield address
        return
    if consul_binary() is None:
        pytest.skip(
            "no Consul agent: CONSUL_HTTP_ADDR is not set and no consul binary is on PATH "
            "(scripts/ensure_test_services.sh installs Debian bullseye's consul 1.8.7)"
        )
    agent = ConsulDevAgent(tmp_path_factory.mktemp("consul")).start()
    _LIVE_CONSUL_AGENTS.append(agent)
    try:
        yield agent.address
    finally:
        _LIVE_CONSUL_AGENTS.remove(agent)
        agent.stop()


@pytest.fixture
def consul_backend_factory(consul_address: str) -> Iterator[BackendFactory]:
    """Each call: a ConsulBackend on the live agent with a KV prefix of its own."""
    address = consul_address
    token = os.environ.get("CONSUL_HTTP_TOKEN")
    # The agent's catalog is shared by every test: start and end each without the
    # services earlier tests registered through the hub.
    _deregister_hub_services(address, token)
    yield _consul_factory(address, token)
    _deregister_hub_services(address, token)


def _deregister_hub_services(address: str, token: str | None) -> None:
    import httpx

    base = address if "//" in address else f"http://{address}"
    headers = {"X-Consul-Token": token} if token else {}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        services = client.get("/v1/agent/services").raise_for_status().json()
        for service_id, service in services.items():
            if (service.get("Meta") or {}).get("hub-managed") == "true":
                client.put(f"/v1/agent/service/deregister/{service_id}").raise_for_status()


@pytest.fixture
def fake_consul() -> Iterator[Any]:
    """A fake Consul agent built from Consul's HTTP API docs (tests/contract/fake_consul.py)."""
    from tests.contract.fake_consul import FakeConsul

    fake = FakeConsul()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def consul_contract_backend_factory(fake_consul: Any) -> BackendFactory:
    """Contract level only: the Consul backend against the fake agent, not a live one."""
    return _consul_factory(fake_consul.address, None)


def _consul_factory(address: str, token: str | None) -> BackendFactory:
    from adapters.consul import ConsulBackend

    async def make() -> Backend:
        # A fresh KV prefix per backend; the catalog is the agent's own and is shared.
        backend = ConsulBackend(address, token=token, kv_prefix=f"hub-test-{uuid.uuid4().hex}/")
        await backend.open()
        return backend

    return make


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One real etcd member for the whole session (tests share it by namespace)."""
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_backend_factory(etcd_server: EtcdCluster) -> Iterator[BackendFactory]:
    """Each call: an EtcdBackend on the session's etcd with a namespace of its own."""
    from adapters.etcd import EtcdBackend

    namespaces: list[str] = []

    async def make() -> Backend:
        namespaces.append(f"test-{uuid.uuid4().hex}")
        backend = EtcdBackend(etcd_server.endpoints, namespace=namespaces[-1])
        await backend.open()
        return backend

    yield make
    # Delete what the test left, so leases it granted expire without later DELETE events
    # (and revisions) landing in the next test.
    for namespace in namespaces:
        etcd_server.delete_prefix(f"/{namespace}/")
        etcd_server.delete_prefix(f"/{namespace}.audit/")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report shows the log tail of every etcd member still running."""
    report = yield
    if report.failed:
        for cluster in live_clusters():
            report.sections.append(("etcd log tail", cluster.log_tails()))
        for agent in _LIVE_CONSUL_AGENTS:
            report.sections.append(("consul agent log tail", agent.log_tail()))
    return report


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def backend_factory(
    backend_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[BackendFactory]:
    """Builds fresh opened backends of the parametrized kind and closes them afterwards."""
    make: BackendFactory = request.getfixturevalue(
        f"{backend_kind.replace('-', '_')}_backend_factory"
    )
    opened: list[Backend] = []

    async def tracked() -> Backend:
        backend = await make()
        opened.append(backend)
        return backend

    yield tracked
    for backend in opened:
        with contextlib.suppress(Exception):
            await backend.close()


@pytest.fixture
async def backend(backend_factory: BackendFactory) -> Backend:
    """One fresh opened backend of the parametrized kind."""
    return await backend_factory()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pytest_configure(config: Any) -> None:
    os.environ.setdefault("HUB_LOG_LEVEL", "warning")
