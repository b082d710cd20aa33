"""The token CLI's defaults and error lines (no hub needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facade.cli.connection import default_token_file, default_url, describe_error
from facade.cli.main import _parser
from shared.errors import InvalidRequest, NotFound


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        (None, None, "http://127.0.0.1:7000"),
        ("0.0.0.0", "7100", "http://127.0.0.1:7100"),
        ("10.0.0.5", "7200", "http://10.0.0.5:7200"),
        ("::1", "7300", "http://[::1]:7300"),
    ],
)
def test_default_url_follows_hub_host_and_port(
    monkeypatch: pytest.MonkeyPatch, host: str | None, port: str | None, url: str
) -> None:
    for name, value in (("HUB_HOST", host), ("HUB_PORT", port)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert default_url() == url


def test_default_token_file_follows_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_TOKEN_FILE", raising=False)
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    assert default_token_file() == Path("hub-data/admin-token")
    monkeypatch.setenv("HUB_DATA_DIR", "/srv/hub")
    assert default_token_file() == Path("/srv/hub/admin-token")
    monkeypatch.setenv("HUB_TOKEN_FILE", "/run/secrets/hub")
    assert default_token_file() == Path("/run/secrets/hub")


def test_url_and_token_file_are_accepted_after_the_action() -> None:
    before = _parser().parse_args(["token", "--url", "http://h:1", "list"])
    after = _parser().parse_args(["token", "list", "--url", "http://h:1", "--token-file", "f"])
    assert before.url == after.url == "http://h:1"
    assert after.token_file == Path("f")
    assert not hasattr(_parser().parse_args(["token", "list"]), "url")


def test_error_lines_name_the_failing_fields() -> None:
    error = InvalidRequest(
        "the request failed validation",
        details={"errors": [{"field": "role", "problem": "Input should be 'admin'"}]},
    )
    assert describe_error(error) == (
        "invalid_request: the request failed validation (role: Input should be 'admin')"
    )
    missing = NotFound("no token 'ab'", details={"token_id": "ab"})
    assert describe_error(missing) == 'not_found: no token \'ab\' {"token_id": "ab"}'


def test_deploy_start_sends_the_spec_call() -> None:
    from facade.cli.deploy import start_body
    from facade.cli.main import _parser

    args = _parser().parse_args(
        ["deploy", "start", "trading-engine", "v2.1.0", "--batch-size", "2", "--url", "http://h"]
    )
    assert start_body(args) == {
        "service": "trading-engine",
        "version": "v2.1.0",
        "strategy": "rolling",
        "batch_size": 2,
    }
    args = _parser().parse_args(
        ["deploy", "start", "api", "v3", "--canary-tenant", "t1", "--canary-percent", "10"]
    )
    assert start_body(args) | {"batch_size": 1} == {
        "service": "api",
        "version": "v3",
        "strategy": "canary",
        "batch_size": 1,
        "tenants": ["t1"],
        "weight_percent": 10,
    }
    args = _parser().parse_args(["deploy", "abort", "dep-1-abcdef"])
    assert (args.command, args.action, args.deployment_id) == ("deploy", "abort", "dep-1-abcdef")
