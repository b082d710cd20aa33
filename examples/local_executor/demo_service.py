"""``python -m examples.local_executor.demo_service``: a minimal versioned service.

What the local executor starts in the end-to-end test: a :class:`BaseService` that
registers with ``--version``, answers ``GET /version``, and logs when a deployment
drains it. ``--broken`` makes its health endpoint answer 503, so the hub's prober marks
the instance critical (a broken new version, for tests).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from shared.base_service import BaseService, ServiceConfig
from shared.client import RetryPolicy
from shared.logs import configure_logging


class DemoService(BaseService):
    """Serves ``/version``; notes the draining callback."""

    broken = False
    """Answer every health check with 503 (a broken build)."""

    def health(self) -> dict[str, Any]:
        """BaseService's health, or ``broken`` (503) for a broken build."""
        body = super().health()
        return body | {"status": "broken"} if self.broken else body

    async def on_draining(self, desired_version: str | None) -> None:
        """The hub drains this instance: a real service would finish in-flight work here."""
        self.logger.info("draining: replaced by version %s", desired_version)

    def build_app(self) -> FastAPI:
        """The service's app: /health (BaseService) and /version."""
        app = self.create_app()

        @app.get("/version")
        async def version() -> dict[str, str | bool | None]:
            return {
                "version": self.config.version,
                "draining": self.draining_requested,
                "desired_version": self.desired_version,
            }

        return app


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="demo_service", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--broken", action="store_true", help="health answers 503")
    parser.add_argument("--check-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    config = ServiceConfig(
        service_name=args.name,
        version=args.version,
        port=args.port,
        hub_url=args.hub_url,
        ttl=10,
        heartbeat_interval=0.5,
        # Quick verdicts, so a broken version is caught within a second or two.
        health_check={
            "kind": "http",
            "interval": args.check_interval,
            "timeout": min(0.8, args.check_interval),
            "failures_before_critical": 2,
            "successes_before_passing": 1,
        },
        hub_retry=RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.5),
    )
    configure_logging(args.name, "INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    service = DemoService(config)
    service.broken = args.broken
    service.run(service.build_app(), log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
