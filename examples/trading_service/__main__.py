"""``python -m examples.trading_service``: run the example service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from examples.trading_service.service import DEFAULT_DATABASE_URL, TradingService, build_config
from shared.client import RetryPolicy
from shared.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, build the service and serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="trading_service",
        description=__doc__,
        epilog="The hub token comes from CENTRAL_HUB_TOKEN (a service token for "
        "order-intake: central-hub token create --role service --name order-intake "
        "--service order-intake); without it the hub refuses the registration.",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--hub-url", help="the hub (default $CENTRAL_HUB_URL or the template)")
    parser.add_argument("--ttl", type=int, help="registration TTL in seconds")
    parser.add_argument("--heartbeat", type=float, help="seconds between heartbeats")
    parser.add_argument("--drain", type=float, help="seconds between deregistering and exit")
    parser.add_argument("--config-tenant", help="tenant whose configuration to follow")
    parser.add_argument("--config-wait", type=float, default=30.0)
    parser.add_argument(
        "--backup-dir", type=Path, help="where system-wide backups of this service go"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        help="SQLAlchemy async URL (default $DATABASE_URL, else SQLite ./order-intake.db; "
        "postgresql+asyncpg://... for row-level security)",
    )
    args = parser.parse_args(argv)

    overrides = {
        "port": args.port,
        "host": args.host,
        "hub_url": args.hub_url,
        "ttl": args.ttl,
        "heartbeat_interval": args.heartbeat,
        "drain_seconds": args.drain,
        "config_tenant_id": args.config_tenant,
        "config_wait": args.config_wait,
        # a short per-call retry: the registration loop itself retries until the hub is up
        "hub_retry": RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.5),
    }
    config = build_config(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(config.service_name, "INFO")
    # one line per hub call would drown the service's own lines
    logging.getLogger("httpx").setLevel(logging.WARNING)
    service = TradingService(config, backup_dir=args.backup_dir, database_url=args.database_url)
    service.run(service.build_app(), log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
