"""Background refits of cached forecast models (issue 16): a refit never blocks an answer.

A real hub app (embedded backend, SQLite telemetry store); the scaling service under test
is built over the hub's own store, discovery and config with a refit pool whose single
worker the test keeps busy, so "a refit is running" is a state the test controls rather
than a race it hopes to win.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from facade import HubSettings, create_app
from facade.telemetry.scaling import ScalePredictRequest, ScalingService
from facade.telemetry.store import SeriesKey
from shared.tenancy import TenantContext
from tests.integration.test_predictive_scaling import STEP, post_points, register, sine_points
from tests.processes import ADMIN_HEADERS, TEST_ADMIN_TOKEN


@pytest.fixture
async def hub_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(
        HubSettings(
            data_dir=tmp_path / "hub",
            admin_token=TEST_ADMIN_TOKEN,  # type: ignore[arg-type]
            probing=False,
            forecast_library=False,
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


def newer(after: float, n: int) -> list[dict[str, float]]:
    return [{"ts": after + STEP * (k + 1), "value": 900.0 + k} for k in range(n)]


async def test_answers_from_the_cached_model_while_the_refit_runs(
    api: httpx.AsyncClient, hub_app: FastAPI
) -> None:
    hub = hub_app.state.hub
    await register(api, "pricing", instances=2)
    history = sine_points(days=3)
    assert (await post_points(api, "pricing", history)).status_code == 201
    pool = ThreadPoolExecutor(1)
    gate = threading.Event()
    pool.submit(gate.wait)  # the refit pool's only worker is busy until the gate opens
    scaling = ScalingService(
        hub.telemetry_store,
        hub.discovery,
        hub.config,
        refit_points=5,
        use_library=False,
        refit_executor=pool,
    )
    key = SeriesKey("pricing", "requests")
    req = ScalePredictRequest(service_name="pricing", capacity_per_instance=200)
    ctx = TenantContext()

    async def ask() -> dict[str, Any]:
        return await scaling.predict(req, ctx)

    try:
        first = await ask()  # the first fit happens in the request: nothing to answer from
        assert scaling.fits == 1
        age = first["model"]["fit_age"]
        assert age["points_since_fit"] == 0
        assert age["refitting"] is False
        assert first["model"]["fitted_points"] == len(history)

        newest = history[-1]["ts"]
        # A live series: a few points between questions (a burst of refit_points or more
        # at once would be refitted in the request, see the next test).
        await post_points(api, "pricing", newer(newest, 3))
        assert (await ask())["model"]["fit_age"]["refitting"] is False  # 3 < 5: no refit
        await post_points(api, "pricing", newer(newest + 3 * STEP, 3))
        second = await ask()  # 6 >= 5 new points: a refit starts, the answer does not wait
        age = second["model"]["fit_age"]
        assert age["refitting"] is True
        assert age["points_since_fit"] == 6
        assert scaling.fits == 1
        assert second["model"]["fitted_points"] == len(history)  # the old fit...
        assert second["forecast"][0]["ts"] == newest + 7 * STEP  # ...applied to the new points
        assert second["model"]["name"] == first["model"]["name"]

        await post_points(api, "pricing", newer(newest + 6 * STEP, 3))
        third = await ask()  # still the cached model; no second refit for the same series
        assert third["model"]["fit_age"]["points_since_fit"] == 9
        assert third["model"]["fit_age"]["refitting"] is True
        assert third["forecast"][0]["ts"] == newest + 10 * STEP
        assert scaling.fits == 1
        assert scaling.models.refitting(key)

        gate.set()  # the refit gets the worker, fits and replaces the cached model
        await scaling.models.wait_refit(key)
        assert scaling.fits == 2
        assert not scaling.models.refitting(key)
        fresh = await ask()
        age = fresh["model"]["fit_age"]
        assert age["refitting"] is False
        # The refit read the series when its task first ran: before or after the last
        # 3 points (either way fewer than refit_points are left, so no new refit).
        assert age["points_since_fit"] in (0, 3)
        assert fresh["model"]["fitted_points"] == len(history) + 9 - age["points_since_fit"]
        assert fresh["forecast"][0]["ts"] == newest + 10 * STEP
    finally:
        gate.set()
        await scaling.close()
        pool.shutdown(wait=True)


async def test_a_new_horizon_fits_in_the_request_and_a_stale_refit_is_dropped(
    api: httpx.AsyncClient, hub_app: FastAPI
) -> None:
    """A refit started for one horizon must not replace a model fitted since for another."""
    hub = hub_app.state.hub
    await register(api, "pricing", instances=2)
    history = sine_points(days=3)
    await post_points(api, "pricing", history)
    pool = ThreadPoolExecutor(1)
    gate = threading.Event()
    pool.submit(gate.wait)
    scaling = ScalingService(
        hub.telemetry_store,
        hub.discovery,
        hub.config,
        refit_points=5,
        use_library=False,
        refit_executor=pool,
    )
    key = SeriesKey("pricing", "requests")
    ctx = TenantContext()
    hour = ScalePredictRequest(service_name="pricing", horizon_seconds=3600)
    two_hours = ScalePredictRequest(service_name="pricing", horizon_seconds=7200)
    try:
        await scaling.predict(hour, ctx)
        await post_points(api, "pricing", newer(history[-1]["ts"], 3))
        await scaling.predict(hour, ctx)
        await post_points(api, "pricing", newer(history[-1]["ts"] + 3 * STEP, 3))
        assert (await scaling.predict(hour, ctx))["model"]["fit_age"]["refitting"] is True
        other = await scaling.predict(two_hours, ctx)  # no model for 24 steps: fitted now
        assert len(other["forecast"]) == 24
        assert other["model"]["fit_age"]["points_since_fit"] == 0
        assert scaling.fits == 2
        gate.set()
        await scaling.models.wait_refit(key)
        again = await scaling.predict(two_hours, ctx)  # the 12-step refit was not installed
        assert len(again["forecast"]) == 24
        assert again["model"]["fit_age"]["points_since_fit"] == 0
        assert scaling.fits == 2
    finally:
        gate.set()
        await scaling.close()
        pool.shutdown(wait=True)


async def test_a_burst_since_the_last_answer_is_refitted_in_the_request(
    api: httpx.AsyncClient, hub_app: FastAPI
) -> None:
    """A backfill of refit_points or more points at once: the answer comes from a fit
    that saw them, not from a model that never did (a trickle still refits later)."""
    hub = hub_app.state.hub
    await register(api, "pricing", instances=2)
    history = sine_points(days=3)
    await post_points(api, "pricing", history)
    pool = ThreadPoolExecutor(1)
    gate = threading.Event()
    pool.submit(gate.wait)  # a background refit could not run: any refit seen is in-request
    scaling = ScalingService(
        hub.telemetry_store,
        hub.discovery,
        hub.config,
        refit_points=5,
        use_library=False,
        refit_executor=pool,
    )
    req = ScalePredictRequest(service_name="pricing", capacity_per_instance=200)
    try:
        await scaling.predict(req, TenantContext())
        assert scaling.fits == 1
        newest = history[-1]["ts"]
        await post_points(api, "pricing", newer(newest, 8))
        burst = await scaling.predict(req, TenantContext())
        assert scaling.fits == 2
        assert burst["model"]["fit_age"]["points_since_fit"] == 0
        assert burst["model"]["fit_age"]["refitting"] is False
        assert burst["model"]["fitted_points"] == len(history) + 8
        assert burst["forecast"][0]["ts"] == newest + 9 * STEP
    finally:
        gate.set()
        await scaling.close()
        pool.shutdown(wait=True)
