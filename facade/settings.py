"""The hub's one settings object: environment (``HUB_*``), then CLI flags on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facade.tenancy.tiers import CIRCUIT_THRESHOLDS
from shared.tenancy import Tier

BackendName = Literal["embedded", "etcd", "consul"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
SelectionStrategy = Literal["p2c", "round_robin", "least_load", "random"]
TierName = Tier
"""The subscription tiers (:data:`shared.tenancy.Tier`)."""


class CircuitThreshold(BaseModel):
    """One tier's circuit breaker: trip above ``failure_rate``, stay open ``open_seconds``."""

    model_config = ConfigDict(extra="forbid")

    failure_rate: float = Field(ge=0, lt=1)
    open_seconds: float = Field(gt=0, le=3600)


def _spec_circuit_thresholds() -> dict[TierName, CircuitThreshold]:
    # The seed's TenantCircuitBreaker table, shipped with the other tier tables.
    return {
        tier: CircuitThreshold(failure_rate=t.failure_rate, open_seconds=t.open_seconds)
        for tier, t in CIRCUIT_THRESHOLDS.items()
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
    require_backend: bool = Field(
        False,
        description="Exit at start-up when the backend cannot be reached (default: start "
        "stale-tolerant and keep retrying).",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a client has to send a request's complete headers (slowloris guard).",
    )
    keepalive_timeout: int = Field(
        5, ge=1, le=300, description="Seconds an idle keep-alive connection is kept open."
    )
    max_connections: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Most open connections and requests at once; beyond it requests get 503.",
    )
    view_start_timeout: float = Field(
        10.0, gt=0, le=600, description="How long start-up waits for the first backend sync."
    )
    consul_address: str = Field(
        "http://127.0.0.1:8500", min_length=1, description="Consul agent HTTP address."
    )
    consul_token: SecretStr | None = Field(None, description="Consul ACL token, if ACLs are on.")
    consul_datacenter: str | None = Field(None, description="Consul datacenter (agent's own).")
    default_ttl: int | None = Field(
        None, ge=1, le=86_400, description="TTL for registrations that give none (None: none)."
    )
    dev: bool = Field(
        False,
        description="Development mode: no authentication at all. Refused unless bound to "
        "a loopback address.",
    )
    anonymous_reads: bool = Field(
        False, description="Let callers without a token read (never write)."
    )
    admin_token: SecretStr | None = Field(
        None,
        description="An operator-chosen admin token (at least 32 random characters). "
        "Without it, the first start writes a bootstrap admin token to a file.",
    )
    token_file: Path | None = Field(
        None, description="Where the bootstrap admin token is written (default: data_dir)."
    )
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    max_json_depth: int = Field(32, ge=2, le=1000)
    rate_limit_per_token: float = Field(
        10_000.0, gt=0, description="Sustained requests/s for one service/gateway/admin token."
    )
    rate_limit_burst: float = Field(
        20_000.0, gt=0, description="Requests a token may burst above its sustained rate."
    )

    etcd_endpoints: str = Field(
        "http://127.0.0.1:2379",
        min_length=1,
        description="etcd gateway URLs, comma-separated; the next is tried on connection errors.",
    )
    etcd_namespace: str = Field(
        "hub",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$",
        description="Every hub key is stored under /<namespace>/ in etcd.",
    )
    etcd_connect_timeout: float = Field(
        0.5, gt=0, le=30, description="Seconds to connect to an etcd member before the next."
    )
    etcd_read_timeout: float = Field(2.0, gt=0, le=60, description="Seconds an etcd read may take.")
    etcd_write_timeout: float = Field(
        1.5,
        gt=0,
        le=60,
        description="Seconds an etcd write may take before it fails as 'no quorum' (503).",
    )

    @model_validator(mode="after")
    def _secure_defaults(self) -> HubSettings:
        from facade.access.tokens import is_loopback, weak_secret_reason

        if self.dev and not is_loopback(self.host):
            raise ValueError("dev mode (no authentication) is only allowed on a loopback host")
        if self.admin_token is not None:
            reason = weak_secret_reason(self.admin_token.get_secret_value())
            if reason:
                raise ValueError(f"admin_token is refused: {reason}")
        return self

    @property
    def bootstrap_token_path(self) -> Path:
        """Where the first start writes the bootstrap admin token."""
        from facade.access.tokens import BOOTSTRAP_TOKEN_FILE

        return self.token_file or self.data_dir / BOOTSTRAP_TOKEN_FILE

    config_history_limit: int = Field(
        100, ge=1, le=10_000, description="Config versions kept per layer (global, tenant)."
    )
    error_groups_per_service: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="ErrorDNA groups kept per service; the least recently seen goes first.",
    )
    audit_retention_days: float = Field(
        30, gt=0, le=36_500, description="Audit records older than this many days are deleted."
    )
    audit_max_records: int = Field(
        1_000_000,
        ge=1_000,
        le=1_000_000_000,
        description="Most audit records kept; the oldest go first.",
    )
    config_keepalive: float = Field(
        15.0, gt=0, le=300, description="Seconds between keep-alive comments on config streams."
    )
    webhook_max_attempts: int = Field(
        6, ge=1, le=100, description="Delivery attempts per config version and webhook."
    )
    webhook_initial_backoff: float = Field(
        1.0, gt=0, le=3600, description="Seconds before the first webhook retry (then doubled)."
    )
    webhook_max_backoff: float = Field(
        60.0, gt=0, le=3600, description="Longest wait between webhook retries."
    )
    webhook_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds a webhook receiver has to answer."
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
    backup_interval: float = Field(
        0,
        ge=0,
        le=30 * 86400,
        description="Seconds between scheduled backups of the hub's state (0: none); "
        "written by the elected replica only.",
    )
    backup_dir: Path | None = Field(
        None, description="Where scheduled backups go (default: HUB_DATA_DIR/backups)."
    )
    backup_keep: int = Field(
        7, ge=1, le=10_000, description="Scheduled backup files kept (the newest)."
    )
    backup_audit: bool = Field(False, description="Include the audit log in scheduled backups.")
    system_backups: bool = Field(
        True,
        description="Coordinate system-wide backups of services that declare a backup "
        "endpoint (POST /coordination/backups), on the elected replica.",
    )

    telemetry_store: Literal["embedded"] = Field(
        "embedded",
        description="Where telemetry points live: embedded (SQLite in the data directory).",
    )
    telemetry_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest POST /telemetry body (10,000 points of up to ~100 bytes each).",
    )
    forecast_refit_points: int = Field(
        60,
        ge=1,
        le=1_000_000,
        description="Points written to a series after which its cached forecast model is "
        "refitted in the background (model choice and backtest again); answers meanwhile "
        "come from the cached model.",
    )
    forecast_library: bool = Field(
        True,
        description="Use statsforecast's models when the forecast extra is installed "
        "(off: naive forecasts only).",
    )

    deployment_tick_seconds: float = Field(
        0.25,
        gt=0,
        le=60,
        description="How often the elected replica advances active deployments.",
    )
    deployment_keepalive: float = Field(
        15.0, gt=0, le=300, description="Seconds between keep-alives on a deployment's SSE."
    )

    def backend_options(self) -> dict[str, Any]:
        """Constructor keyword arguments for the configured backend."""
        if self.backend == "embedded":
            return {"data_dir": self.data_dir}
        if self.backend == "etcd":
            return {
                "endpoints": self.etcd_endpoints,
                "namespace": self.etcd_namespace,
                "connect_timeout": self.etcd_connect_timeout,
                "read_timeout": self.etcd_read_timeout,
                "write_timeout": self.etcd_write_timeout,
            }
        if self.backend == "consul":
            token = self.consul_token.get_secret_value() if self.consul_token else None
            return {
                "address": self.consul_address,
                "token": token,
                "datacenter": self.consul_datacenter,
            }
        return {}


def _named_in(message: str) -> str:
    """The setting a model-level error message talks about first."""
    found = [(message.find(n), n) for n in HubSettings.model_fields if n in message]
    return min(found)[1] if found else "settings"


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
        name = ".".join(str(p) for p in first["loc"]) or _named_in(first["msg"])
        value = first.get("input")
        shown = "" if isinstance(value, dict) or "token" in name else f" = {value!r}"
        raise SettingsError(
            f"invalid setting {name} (HUB_{name.upper()} / --{name.replace('_', '-')}){shown}: "
            f"{first['msg']}"
        ) from None
