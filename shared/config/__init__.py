"""Configuration templates shipped with the library, and their loader.

- ``development.json`` / ``production.json``: per environment, three sections:
  ``hub`` (the hub server's settings, the same names as its ``HUB_*`` variables: host,
  port, backend, data_dir, log_level), ``client`` (how services reach the hub: URL,
  timeout, retry policy) and ``service`` (BaseService: bind host, registration TTL,
  heartbeat interval, drain time, log level, error reporting).
- ``service-discovery.json``: the hub's address and the platform's services with their
  registration defaults (port, subscription requirements, resource tier, tags), which
  ``ServiceConfig.from_environment`` applies for a service of that name.

The environment is chosen by ``AITRADING_ENV`` (default ``development``).
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources
from typing import Any

ENVIRONMENTS = ("development", "production")
TEMPLATES = (*ENVIRONMENTS, "service-discovery")
ENVIRONMENT_VARIABLE = "AITRADING_ENV"


def environment_name(explicit: str | None = None) -> str:
    """The environment in force: ``explicit``, else ``$AITRADING_ENV``, else development."""
    name = explicit or os.environ.get(ENVIRONMENT_VARIABLE) or "development"
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {name!r}; expected one of {ENVIRONMENTS}")
    return name


@cache
def _load(name: str) -> str:
    """A template's text, read once from the installed package."""
    return resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")


def load_template(name: str) -> dict[str, Any]:
    """A fresh copy of one template (``development``, ``production``, ``service-discovery``)."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown config template {name!r}; expected one of {TEMPLATES}")
    data: dict[str, Any] = json.loads(_load(name))
    return data


def hub_environment(environment: str | None = None) -> dict[str, str]:
    """The template's ``hub`` section as ``HUB_*`` environment variables for the hub."""
    section = load_template(environment_name(environment))["hub"]
    return {f"HUB_{key.upper()}": str(value) for key, value in section.items()}


def service_defaults(service_name: str) -> dict[str, Any]:
    """Registration defaults of a known platform service (empty for others)."""
    services: dict[str, dict[str, Any]] = load_template("service-discovery")["services"]
    return dict(services.get(service_name, {}))
