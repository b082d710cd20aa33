"""POST /telemetry (issue 15's rules) and POST /services/scale/predict (issue 16) over HTTP,
on a real hub app with the embedded backend and the embedded telemetry store (SQLite)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from facade import HubSettings, create_app
from tests.processes import ADMIN_HEADERS, TEST_ADMIN_TOKEN

T0 = 1_700_000_000.0
STEP = 300.0
DAY = 288


@pytest.fixture
async def hub_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(
        HubSettings(
            data_dir=tmp_path / "hub",
            admin_token=TEST_ADMIN_TOKEN,  # type: ignore[arg-type]
            probing=False,
            forecast_library=False,  # the naive path here; the library is tested in unit
        )
    )
    await app.state.hub.start()
    try:
        yield app
    finally:
        await app.state.hub.stop()


@pytest.fixture
async def api(hub_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=hub_app),
        base_url="http://hub.test",
        headers=ADMIN_HEADERS,
    ) as client:
        yield client


async def register(api: httpx.AsyncClient, name: str, instances: int = 2, **extra: Any) -> None:
    for n in range(instances):
        resp = await api.post(
            "/services/register",
            json={
                "name": name,
                "host": "127.0.0.1",
                "port": 9000 + n,
                "protocol": "tcp",
                "instance_id": f"{name}-{n}",
                **extra,
            },
        )
        assert resp.status_code in (200, 201), resp.text


def sine_points(days: int, start: float = T0) -> list[dict[str, float]]:
    return [
        {
            "ts": start + i * STEP,
            "value": round(1000 + 400 * math.sin(2 * math.pi * i / DAY) + (i * 37) % 11, 3),
        }
        for i in range(days * DAY)
    ]


async def post_points(
    api: httpx.AsyncClient, service: str, points: list[dict[str, float]], **extra: Any
) -> httpx.Response:
    return await api.post(
        "/telemetry", json={"service": service, "metric": "requests", "points": points, **extra}
    )


def stored_rows(hub_app: FastAPI) -> int:
    path = hub_app.state.settings.data_dir / "telemetry.sqlite3"
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM points").fetchone()[0])


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details"}
    return error


# -- POST /telemetry ------------------------------------------------------------------


async def test_ten_thousand_points_in_one_call_and_not_one_more(
    api: httpx.AsyncClient, hub_app: FastAPI
) -> None:
    points = [{"ts": T0 + i * 10, "value": float(i % 97)} for i in range(10_000)]
    resp = await post_points(api, "pricing", points)
    assert resp.status_code == 201, resp.text
    assert resp.json()["stored"] == 10_000
    refused = await post_points(api, "pricing", [*points, {"ts": T0 + 200_000.0, "value": 1.0}])
    assert_error(refused, 422, "invalid_request")
    assert stored_rows(hub_app) == 10_000


async def test_one_bad_point_refuses_the_whole_call(
    api: httpx.AsyncClient, hub_app: FastAPI
) -> None:
    good = [{"ts": T0 + i, "value": 1.0} for i in range(50)]
    for bad in (
        {"ts": T0, "value": "many"},
        {"ts": -1, "value": 1.0},
        {"ts": T0, "value": 1.0, "extra": 1},
        {"ts": T0},
        {"ts": T0, "value": -3.0},  # a negative count
    ):
        resp = await post_points(api, "pricing", [*good, bad])
        error = assert_error(resp, 422, "invalid_request")
        assert "50" in str(error["details"])  # the bad point is named by its index
    for body in (
        {"service": "pricing", "metric": "Requests", "points": good},
        {"service": "pricing", "metric": "9lives", "points": good},
        {"service": "pricing", "metric": "x" * 65, "points": good},
        {"service": "Not A Service", "metric": "requests", "points": good},
        {"service": "pricing", "metric": "requests", "points": []},
    ):
        assert_error(await api.post("/telemetry", json=body), 422, "invalid_request")
    assert stored_rows(hub_app) == 0
    # any well-formed metric name is accepted, and negative values outside counts
    ok = await api.post(
        "/telemetry",
        json={
            "service": "pricing",
            "metric": "queue_depth_delta",
            "points": [{"ts": T0, "value": -2}],
        },
    )
    assert ok.status_code == 201, ok.text


async def test_same_ts_replaces_and_order_does_not_matter(
    api: httpx.AsyncClient, hub_app: FastAPI
) -> None:
    store = hub_app.state.hub.telemetry_store
    from facade.telemetry.store import SeriesKey

    await post_points(api, "pricing", [{"ts": T0 + 20, "value": 3}, {"ts": T0, "value": 1}])
    await post_points(api, "pricing", [{"ts": T0 + 10, "value": 2}, {"ts": T0 + 20, "value": 30}])
    await post_points(api, "pricing", [{"ts": T0 + 10, "value": 20}], tenant_id="acme")
    assert await store.query(SeriesKey("pricing", "requests")) == [
        (T0, 1.0),
        (T0 + 10, 2.0),
        (T0 + 20, 30.0),
    ]
    assert await store.query(SeriesKey("pricing", "requests", "acme")) == [(T0 + 10, 20.0)]
    assert await store.query(SeriesKey("pricing", "requests"), start=T0 + 5, end=T0 + 15) == [
        (T0 + 10, 2.0)
    ]


async def test_service_token_reports_only_its_own_services(api: httpx.AsyncClient) -> None:
    issued = await api.post(
        "/tokens", json={"role": "service", "name": "pricing", "services": ["pricing"]}
    )
    assert issued.status_code == 201, issued.text
    token = {"authorization": f"Bearer {issued.json()['token']}"}
    points = [{"ts": T0, "value": 1.0}]
    own = await api.post(
        "/telemetry",
        json={"service": "pricing", "metric": "requests", "points": points},
        headers=token,
    )
    assert own.status_code == 201, own.text
    other = await api.post(
        "/telemetry",
        json={"service": "risk", "metric": "requests", "points": points},
        headers=token,
    )
    assert_error(other, 403, "forbidden")
    tenant = await api.post("/tokens", json={"role": "tenant", "name": "t", "tenant_id": "acme"})
    assert tenant.status_code == 201, tenant.text
    refused = await api.post(
        "/telemetry",
        json={"service": "pricing", "metric": "requests", "points": points},
        headers={"authorization": f"Bearer {tenant.json()['token']}"},
    )
    assert refused.status_code == 403, refused.text


# -- POST /services/scale/predict -----------------------------------------------------


async def test_predict_answers_forecast_model_backtest_and_recommendation(
    api: httpx.AsyncClient,
) -> None:
    await register(api, "pricing", instances=3)
    points = sine_points(days=3)
    assert (await post_points(api, "pricing", points)).status_code == 201
    resp = await api.post(
        "/services/scale/predict",
        params={"service_name": "pricing"},
        json={"horizon_seconds": 3600, "capacity_per_instance": 200},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["current_instances"] == 3
    forecast = body["forecast"]
    assert len(forecast) == 12  # 3600 s at a 300 s step
    newest = points[-1]["ts"]
    assert [p["ts"] for p in forecast] == [newest + STEP * (k + 1) for k in range(12)]
    for p in forecast:
        assert p["lower"] <= p["value"] <= p["upper"]
    assert body["model"]["seasons"][0]["name"] == "daily"
    assert body["model"]["name"] == "seasonal_naive_daily"
    assert body["backtest"]["ratio_to_best_naive"] <= 1.0
    peak = max(p["upper"] for p in forecast)
    assert body["recommended_instances"] == max(2, math.ceil(peak * 1.2 / 200 - 1e-9))
    assert body["recommendation"]["peak_upper"] == pytest.approx(peak)
    assert 0 < body["confidence"] < 1
    assert body["tenant_limits"]["max_instances"] is None  # no tenant context

    # the same question again is answered from the cached model
    scaling = api._transport.app.state.hub.scaling  # type: ignore[attr-defined]
    fits = scaling.fits
    again = await api.post(
        "/services/scale/predict", json={"service_name": "pricing", "capacity_per_instance": 200}
    )
    assert again.json()["forecast"] == forecast
    assert scaling.fits == fits
    # a few new points move the forecast's start without a refit
    newer = [{"ts": newest + STEP * (k + 1), "value": 1000.0} for k in range(3)]
    await post_points(api, "pricing", newer)
    moved = (await api.post("/services/scale/predict", params={"service_name": "pricing"})).json()
    assert moved["forecast"][0]["ts"] == newest + 4 * STEP
    assert scaling.fits == fits
    assert moved["recommended_instances"] is None
    assert moved["recommendation"]["capacity"]["source"] == "unknown"


async def test_limits_by_tier_and_tenant_override(api: httpx.AsyncClient) -> None:
    await register(api, "pricing", instances=2)
    for tenant, tier in (("small", "free"), ("mid", "pro"), ("big", "enterprise")):
        assert (
            await api.post("/tenants", json={"tenant_id": tenant, "subscription_tier": tier})
        ).status_code == 201
        await post_points(api, "pricing", sine_points(days=2), tenant_id=tenant)

    async def ask(tenant: str) -> dict[str, Any]:
        resp = await api.post(
            "/services/scale/predict",
            params={"service_name": "pricing"},
            json={"capacity_per_instance": 10},  # far too small: every tier's cap applies
            headers={"x-tenant-id": tenant},
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    caps = {t: (await ask(t))["tenant_limits"]["max_instances"] for t in ("small", "mid", "big")}
    assert caps == {"small": 2, "mid": 10, "big": 50}
    big = await ask("big")
    assert big["recommended_instances"] == 50
    assert big["recommendation"]["limited_by"] == "tenant_limits.max_instances"
    assert big["tenant_limits"]["tier"] == "enterprise"
    # a per-tenant override through the config service
    patched = await api.patch("/config/mid", json={"scaling_limits": {"max_instances": 4}})
    assert patched.status_code == 200, patched.text
    mid = await ask("mid")
    assert mid["tenant_limits"]["max_instances"] == 4
    assert mid["recommended_instances"] == 4


async def test_short_history_unknown_service_and_missing_history(api: httpx.AsyncClient) -> None:
    missing = await api.post("/services/scale/predict", params={"service_name": "nowhere"})
    assert_error(missing, 404, "service_not_found")
    await register(api, "pricing", instances=1)
    no_history = await api.post("/services/scale/predict", params={"service_name": "pricing"})
    error = assert_error(no_history, 422, "invalid_request")
    assert error["details"]["missing"] == {
        "service": "pricing",
        "metric": "requests",
        "tenant_id": None,
    }
    assert "requests" in error["message"]
    assert_error(await api.post("/services/scale/predict", json={}), 422, "invalid_request")

    await post_points(
        api, "pricing", [{"ts": T0 + i * 10, "value": 5.0 + i % 3} for i in range(30)]
    )
    short = await api.post(
        "/services/scale/predict",
        json={"service_name": "pricing", "horizon_seconds": 60, "capacity_per_instance": 100},
    )
    assert short.status_code == 200, short.text
    body = short.json()
    assert body["model"]["name"] == "naive"
    assert "too little history" in body["model"]["why"]
    assert body["model"]["short_history"]
    assert [p["value"] for p in body["forecast"]] == [7.0] * 6  # the last value, 6 x 10 s
    assert body["recommended_instances"] == 1


async def test_capacity_is_learnt_where_latency_rises(api: httpx.AsyncClient) -> None:
    await register(api, "pricing", instances=2)
    load = [{"ts": T0 + i * 60, "value": float(100 + (i * 7) % 900)} for i in range(600)]
    latency = [
        {"ts": p["ts"], "value": 20.0 if p["value"] < 700 else 20.0 + (p["value"] - 700)}
        for p in load
    ]
    await post_points(api, "pricing", load)
    resp = await api.post(
        "/telemetry", json={"service": "pricing", "metric": "latency_ms", "points": latency}
    )
    assert resp.status_code == 201, resp.text
    body = (await api.post("/services/scale/predict", params={"service_name": "pricing"})).json()
    capacity = body["recommendation"]["capacity"]
    assert capacity["source"].startswith("learnt: latency_ms")
    # the knee is near a load of 700 over 2 healthy instances
    assert 330 <= capacity["per_instance"] <= 420
    peak = body["recommendation"]["peak_upper"]
    expected = math.ceil(peak * 1.2 / capacity["per_instance"] - 1e-9)
    assert body["recommended_instances"] == max(2, expected)
