"""Settings: environment first, overrides on top, one clear line for a bad value."""

from __future__ import annotations

import pytest

from facade.settings import SettingsError, load_settings


def test_defaults_bind_loopback_port_7000_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUB_HOST", "HUB_PORT", "HUB_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.host, settings.port, settings.backend) == ("127.0.0.1", 7000, "embedded")


def test_environment_then_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PORT", "7100")
    assert load_settings().port == 7100
    assert load_settings(port="7200").port == 7200


@pytest.mark.parametrize(
    ("override", "named"),
    [({"port": "70000"}, "port"), ({"backend": "redis"}, "backend"), ({"log_level": "x"}, "log")],
)
def test_bad_settings_name_the_setting(override: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**override)
    message = str(info.value)
    assert named in message
    assert "\n" not in message
