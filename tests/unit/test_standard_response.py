"""StandardResponse through a real FastAPI app (ASGI, in process): the success envelope,
every hub error in the hub's shape and status, and the client's round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from facade.errors import status_for
from shared import errors
from shared.base_service import BaseService, ServiceConfig
from shared.errors import error_from_payload


class Item(BaseModel):
    name: str
    quantity: int


def _error_classes() -> list[type[errors.HubError]]:
    return [cls for cls in errors._all_error_classes() if cls is not errors.HubError]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    service = BaseService(
        ServiceConfig(service_name="pricing", version="2.1.0", hub_url="http://127.0.0.1:9"),
        metrics_registry=CollectorRegistry(),
    )
    app: FastAPI = service.create_app()

    @app.get("/items")
    async def items() -> list[dict[str, Any]]:
        return [{"name": "a"}]

    @app.post("/items")
    async def add(item: Item) -> Item:
        return item

    @app.get("/fail/{code}")
    async def fail(code: str) -> None:
        cls = errors.error_class_for(code)
        assert cls is not None
        raise cls(
            f"{code} happened", details={"retry_after": 2.2} if code == "quota_exceeded" else {}
        )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-db-password in the message")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc.test") as client:
        yield client
    await service.client.aclose()


async def test_success_envelope_carries_the_request_context(http: httpx.AsyncClient) -> None:
    answer = await http.get(
        "/items", headers={"x-tenant-id": "company_abc", "x-correlation-id": "req_1"}
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "data": [{"name": "a"}],
        "meta": {
            "correlation_id": "req_1",
            "tenant_id": "company_abc",
            "service": "pricing",
            "version": "2.1.0",
        },
    }
    # no tenant: tenant_id null, a correlation id made up and echoed
    anonymous = await http.post("/items", json={"name": "b", "quantity": 2})
    assert anonymous.json()["data"] == {"name": "b", "quantity": 2}
    assert anonymous.json()["meta"]["tenant_id"] is None
    assert anonymous.json()["meta"]["correlation_id"] == anonymous.headers["x-correlation-id"]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.code)
async def test_every_hub_error_has_the_hubs_shape_and_status(
    http: httpx.AsyncClient, cls: type[errors.HubError]
) -> None:
    answer = await http.get(f"/fail/{cls.code}")
    # the same status the hub itself answers for this class
    assert answer.status_code == status_for(cls("x"))
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    rebuilt = error_from_payload(body)
    assert type(rebuilt) is cls
    assert rebuilt.message == f"{cls.code} happened"


async def test_rate_limit_errors_say_when_to_retry(http: httpx.AsyncClient) -> None:
    answer = await http.get("/fail/quota_exceeded")
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "2"


async def test_framework_errors_use_the_same_shape(http: httpx.AsyncClient) -> None:
    invalid = await http.post("/items", json={"name": "b", "quantity": "many"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid_request"
    assert invalid.json()["error"]["details"]["errors"][0]["field"] == "quantity"

    malformed = await http.post(
        "/items", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"

    missing = await http.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    wrong_method = await http.delete("/items")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


async def test_unexpected_exceptions_are_500_without_their_text(http: httpx.AsyncClient) -> None:
    answer = await http.get("/boom")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "hub_error"
    assert "secret" not in answer.text
