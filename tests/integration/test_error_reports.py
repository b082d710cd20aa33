"""ErrorDNA reports counted by the hub (POST /errors) and its top groups (GET /errors)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from facade import HubSettings, create_app
from shared.client import AsyncHubClient
from shared.error_dna import ErrorDNA
from shared.errors import Forbidden, InvalidRequest, TenantMismatch
from tests.processes import TEST_ADMIN_TOKEN


@pytest.fixture
async def hub_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(
        HubSettings(
            data_dir=tmp_path / "hub", admin_token=TEST_ADMIN_TOKEN, error_groups_per_service=3
        )
    )
    await app.state.hub.start()
    try:
        yield app
    finally:
        await app.state.hub.stop()


def client_for(app: FastAPI, token: str = TEST_ADMIN_TOKEN) -> AsyncHubClient:
    return AsyncHubClient("http://hub.test", transport=httpx.ASGITransport(app=app), token=token)


async def issue_token(admin: AsyncHubClient, **body: object) -> str:
    issued = await admin.http.post(
        "/tokens", json=body, headers={"authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    )
    assert issued.status_code == 201, issued.text
    token: str = issued.json()["token"]
    return token


async def test_reports_from_many_instances_are_one_group(hub_app: FastAPI) -> None:
    admin = client_for(hub_app)
    service_token = await issue_token(
        admin, role="service", name="trading-engine", services=["trading-engine"]
    )
    reporter = client_for(hub_app, service_token)
    # three instances of one service, each with its own ErrorDNA, hit the same failure
    instances = [ErrorDNA("trading-engine") for _ in range(3)]
    for n, dna in enumerate(instances):
        analysis = dna.analyze_error(
            error_message=f"Error 111 connecting to 10.0.3.{n}:6379. Connection refused.",
            context={"tenant_id": "company_abc" if n < 2 else "acme"},
        )
        assert await reporter.report_error(analysis) is not None
    other = instances[0].analyze_error(error_message="deadlock detected on orders_pkey")
    await reporter.report_error(other)

    top = await admin.top_errors(service="trading-engine")
    assert top["total_groups"] == 2
    refused, deadlock = top["groups"]
    assert refused["count"] == 3
    assert refused["category"] == "network"
    assert refused["pattern"] == "connection_refused"
    assert refused["tenants"] == {"acme": 1, "company_abc": 2}
    assert refused["suggested_actions"]
    assert refused["first_seen"] <= refused["last_seen"]
    assert deadlock["count"] == 1

    for_tenant = await admin.top_errors(tenant_id="acme")
    assert [g["fingerprint"] for g in for_tenant["groups"]] == [refused["fingerprint"]]
    assert for_tenant["groups"][0]["tenant_count"] == 1

    # a service token reports only for its own services; a tenant token reads only its own
    with pytest.raises(Forbidden):
        await reporter.execute(
            reporter.core.report_error({**analysis.to_dict(), "service_name": "billing"})
        )
    tenant_token = await issue_token(admin, role="tenant", name="acme", tenant_id="acme")
    acme = client_for(hub_app, tenant_token)
    assert (await acme.top_errors())["tenant_id"] == "acme"
    with pytest.raises(TenantMismatch):
        await acme.top_errors(tenant_id="company_abc")
    for c in (admin, reporter, acme):
        await c.aclose()


async def test_concurrent_reports_are_all_counted(hub_app: FastAPI) -> None:
    admin = client_for(hub_app)
    analysis = ErrorDNA("pricing").analyze_error(error_message="Request 7 timed out after 3s")
    results = await asyncio.gather(*(admin.report_error(analysis) for _ in range(20)))
    assert all(r is not None for r in results)
    (group,) = (await admin.top_errors(service="pricing"))["groups"]
    assert group["count"] == 20
    await admin.aclose()


async def test_groups_per_service_are_bounded(hub_app: FastAPI) -> None:
    admin = client_for(hub_app)
    dna = ErrorDNA("pricing")
    for word in ["alpha", "beta", "gamma", "delta"]:
        await admin.report_error(dna.analyze_error(error_message=f"{word} exploded"))
    top = await admin.top_errors(service="pricing", limit=100)
    kept = sorted(g["sample_message"] for g in top["groups"])
    assert kept == ["beta exploded", "delta exploded", "gamma exploded"]
    await admin.aclose()


async def test_bad_reports_are_refused(hub_app: FastAPI) -> None:
    admin = client_for(hub_app)
    good = ErrorDNA("pricing").analyze_error(error_message="boom").to_dict()
    for bad in (
        {**good, "fingerprint": "not-hex!"},
        {**good, "severity": "apocalyptic"},
        {**good, "unexpected": 1},
        {**good, "suggested_actions": ["x" * 600]},
    ):
        with pytest.raises(InvalidRequest):
            await admin.execute(admin.core.report_error(bad))
    with pytest.raises(InvalidRequest):
        await admin.top_errors(service="Bad Name!")
    assert (await admin.top_errors())["total_groups"] == 0
    await admin.aclose()
