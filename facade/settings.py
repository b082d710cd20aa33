"""The hub's one settings object: environment (``HUB_*``), then CLI flags on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

BackendName = Literal["embedded", "etcd", "consul"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
SelectionStrategy = Literal["p2c", "round_robin", "least_load", "random"]
TierName = Literal["free", "pro", "enterprise"]


class CircuitThreshold(BaseModel):
    """One tier's circuit breaker: trip above ``failure_rate``, stay open ``open_seconds``."""

    model_config = ConfigDict(extra="forbid")

    failure_rate: float = Field(ge=0, lt=1)
    open_seconds: float = Field(gt=0, le=3600)


def _spec_circuit_thresholds() -> dict[TierName, CircuitThreshold]:
    # The seed's TenantCircuitBreaker table.
    return {
        "free": CircuitThreshold(failure_rate=0.5, open_seconds=60),
        "pro": CircuitThreshold(failure_rate=0.3, open_seconds=30),
        "enterprise": CircuitThreshold(failure_rate=0.1, open_seconds=10),
    }


class HubSettings(BaseSettings):
    """Everything an operator can configure. Built in ``create_app``, never at import."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="forbid", validate_default=True)

    host: str = Field("127.0.0.1", min_length=1, description="Address to bind.")
    port: int = Field(7000, ge=1, le=65535, description="TCP port to bind.")
    backend: BackendName = Field("embedded", description="State backend kind.")
    data_dir: Path = Field(Path("hub-data"), description="Embedded backend's directory.")
    log_level: LogLevel = Field("info", description="Log level of the hub process.")
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest accepted request body."
    )
    write_visibility_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long a write waits for the local view to catch up (read-your-writes).",
    )
    view_start_timeout: float = Field(
        10.0, gt=0, le=600, description="How long start-up waits for the first backend sync."
    )
    default_ttl: int | None = Field(
        None, ge=1, le=86_400, description="TTL for registrations that give none (None: none)."
    )

    probing: bool = Field(
        True,
        description="Run active health checks (on the elected replica only). Off, or a "
        "backend with native checks (Consul): the hub never probes.",
    )
    probe_concurrency: int = Field(
        100, ge=1, le=10_000, description="Most health probes in flight at once."
    )
    health_refresh_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Rewrite an unchanged health result after this long (keeps last_check fresh).",
    )
    leader_ttl: int = Field(
        10, ge=1, le=300, description="Lease TTL of the prober leader: the takeover time bound."
    )
    selection_strategy: SelectionStrategy = Field(
        "p2c", description="Default endpoint selection strategy."
    )
    circuit_thresholds: dict[TierName, CircuitThreshold] = Field(
        default_factory=_spec_circuit_thresholds,
        description="Per-tier failure rate and open time (JSON); default: the seed's table.",
    )
    circuit_window_seconds: float = Field(
        60.0, ge=1, le=3600, description="Sliding window the failure rate is computed over."
    )
    circuit_minimum_calls: int = Field(
        10, ge=1, le=100_000, description="Outcomes needed in the window before a trip."
    )
    circuit_half_open_successes: int = Field(
        3, ge=1, le=1000, description="Successful trial calls that close a HALF_OPEN circuit."
    )

    def backend_options(self) -> dict[str, Any]:
        """Constructor keyword arguments for the configured backend."""
        if self.backend == "embedded":
            return {"data_dir": self.data_dir}
        return {}


class SettingsError(ValueError):
    """A setting is invalid; ``str()`` is one line naming it."""


def load_settings(**overrides: Any) -> HubSettings:
    """Settings from the environment with ``overrides`` (e.g. CLI flags) on top.

    Raises SettingsError with one line naming the first bad setting.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return HubSettings(**clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        value = first.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        raise SettingsError(
            f"invalid setting {name} (HUB_{name.upper()} / --{name.replace('_', '-')}){shown}: "
            f"{first['msg']}"
        ) from None
