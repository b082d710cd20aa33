"""The shipped config templates are read by the hub and by BaseService as they are."""

from __future__ import annotations

import socket

import pytest

from facade.settings import HubSettings
from shared.base_service import ServiceConfig
from shared.config import TEMPLATES, hub_environment, load_template, service_defaults


@pytest.mark.parametrize("environment", ["development", "production"])
def test_hub_section_is_valid_hub_settings(
    environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in hub_environment(environment).items():
        monkeypatch.setenv(key, value)
    settings = HubSettings()  # reads HUB_*, rejects unknown or invalid values
    section = load_template(environment)["hub"]
    assert settings.port == section["port"]
    assert settings.backend == section["backend"]
    assert settings.log_level == section["log_level"]


@pytest.mark.parametrize("environment", ["development", "production"])
def test_service_config_comes_from_the_templates(
    environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CENTRAL_HUB_URL", raising=False)
    config = ServiceConfig.from_environment("trading-engine", "2.0.0", environment)
    template = load_template(environment)
    assert config.hub_url == template["client"]["hub_url"]
    assert config.ttl == template["service"]["ttl_seconds"]
    assert config.hub_retry.attempts == template["client"]["retry"]["attempts"]
    # from service-discovery.json
    assert config.port == 8007
    assert config.subscription_requirements == ("pro", "enterprise")
    assert config.resource_tier == "premium"


def test_environment_variable_and_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTRAL_HUB_URL", "http://127.0.0.1:17000")
    monkeypatch.setenv("AITRADING_ENV", "production")
    monkeypatch.delenv("SERVICE_ADVERTISE_HOST", raising=False)
    config = ServiceConfig.from_environment("unknown-svc", port=9100)
    assert config.environment == "production"
    assert config.hub_url == "http://127.0.0.1:17000"
    assert config.port == 9100
    # binds every interface in production, so it advertises the machine's name
    assert config.host == "0.0.0.0"
    assert config.address == socket.gethostname()
    assert service_defaults("unknown-svc") == {}


def test_unknown_names_are_refused() -> None:
    assert set(TEMPLATES) == {"development", "production", "service-discovery"}
    with pytest.raises(ValueError, match="unknown config template"):
        load_template("staging")
    with pytest.raises(ValueError, match="unknown environment"):
        ServiceConfig.from_environment("svc", environment="staging")
