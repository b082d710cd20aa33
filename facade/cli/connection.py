"""How the ``central-hub`` sub-commands reach a running hub: its URL, the admin token and
one line for the hub's errors (shared by ``token``, ``deploy``, ``backup`` and ``migrate``)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from adapters.base import url_host
from shared.errors import HubError


class NoAdminToken(Exception):
    """Neither ``HUB_TOKEN`` nor a readable token file: the message says what was tried."""


def default_url() -> str:
    """The hub this machine's settings point at (HUB_HOST / HUB_PORT)."""
    host = os.environ.get("HUB_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind is reached on loopback
        host = "127.0.0.1"
    port = os.environ.get("HUB_PORT") or "7000"
    return f"http://{url_host(host)}:{port}"


def default_token_file() -> Path:
    """Where ``central-hub run`` writes the bootstrap token with the same environment."""
    configured = os.environ.get("HUB_TOKEN_FILE")
    if configured:
        return Path(configured)
    from facade.access.tokens import BOOTSTRAP_TOKEN_FILE

    return Path(os.environ.get("HUB_DATA_DIR") or "hub-data") / BOOTSTRAP_TOKEN_FILE


def hub_url(args: argparse.Namespace) -> str:
    """``--url``, else the default URL."""
    url: str = getattr(args, "url", None) or default_url()
    return url


def admin_secret(args: argparse.Namespace) -> str:
    """``HUB_TOKEN``, else ``--token-file``, else the bootstrap token file."""
    secret = os.environ.get("HUB_TOKEN")
    if secret:
        return secret
    token_file: Path = getattr(args, "token_file", None) or default_token_file()
    try:
        return token_file.read_text().strip()
    except OSError as exc:
        raise NoAdminToken(f"no admin token: set HUB_TOKEN or --token-file ({exc})") from exc


def describe_error(error: HubError) -> str:
    """One line: the hub's error code and message, then the failing field(s) if named."""
    text = f"{error.code}: {error.message}"
    details = error.details or {}
    problems = details.get("errors")
    if isinstance(problems, list) and problems:
        fields = "; ".join(
            f"{p.get('field', '?')}: {p.get('problem', 'invalid')}"
            for p in problems
            if isinstance(p, dict)
        )
        return f"{text} ({fields})"
    shown = {k: v for k, v in details.items() if k != "errors"}
    return f"{text} {json.dumps(shown, sort_keys=True)}" if shown else text
