"""Tenant context over real HTTP: the spec's integration examples as a service sends them,
and identity headers a proxy appended instead of replacing."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.processes import HubProcess

pytestmark = pytest.mark.slow

HubFactory = Callable[..., HubProcess]


def test_spec_examples_from_a_service_and_duplicated_headers_over_http(
    hub_processes: HubFactory,
) -> None:
    hub = hub_processes().start()
    with hub.client() as admin:
        for port, name in ((8801, "risk-management"), (8802, "user-management")):
            reg = {"name": name, "host": "127.0.0.1", "port": port}
            resp = admin.post(
                "/services/register", json=reg | {"subscription_requirements": ["pro"]}
            )
            assert resp.status_code == 201, resp.text
        tenant = admin.post(
            "/tenants", json={"tenant_id": "company_abc", "subscription_tier": "pro"}
        )
        assert tenant.status_code == 201, tenant.text
        issued = admin.post(
            "/tokens", json={"role": "service", "name": "trading-engine", "services": ["te"]}
        )
        assert issued.status_code == 201, issued.text
    bearer = {"authorization": f"Bearer {issued.json()['token']}"}
    tenant_context = {"tenant_id": "company_abc"}

    # The seed's Example 1 and Example 2, plus the service's token.
    response = httpx.get(
        f"{hub.url}/services/discover/risk-management",
        headers={"x-tenant-id": tenant_context["tenant_id"]} | bearer,
    )
    assert response.json()["recommended_endpoint"] == "http://127.0.0.1:8801", response.text
    service_info = httpx.get(
        f"{hub.url}/services/discover/user-management",
        params={"tenant_id": tenant_context["tenant_id"]},
        headers=bearer,
    ).json()
    assert service_info["recommended_endpoint"] == "http://127.0.0.1:8802", service_info

    # A proxy that appended its own values: refused, whichever would have won.
    for headers in (
        [("authorization", bearer["authorization"]), ("authorization", "Bearer other")],
        [*bearer.items(), ("x-tenant-id", "company_abc"), ("x-tenant-id", "company_xyz")],
        [*bearer.items(), ("x-subscription-tier", "free"), ("x-subscription-tier", "pro")],
    ):
        resp = httpx.get(f"{hub.url}/services/discover/risk-management", headers=headers)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "duplicate_header"
