"""The ``central-hub`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from facade.settings import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="central-hub", description="Central Hub")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve the hub API (settings: HUB_* environment)")
    run.add_argument("--host", help="bind address (HUB_HOST, default 127.0.0.1)")
    run.add_argument("--port", help="port (HUB_PORT, default 7000)")
    run.add_argument("--backend", help="embedded | etcd | consul (HUB_BACKEND)")
    run.add_argument("--data-dir", help="embedded backend directory (HUB_DATA_DIR)")
    run.add_argument("--log-level", help="debug | info | warning | error (HUB_LOG_LEVEL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    return 2


def _run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(
            host=args.host,
            port=args.port,
            backend=args.backend,
            data_dir=args.data_dir,
            log_level=args.log_level,
        )
    except SettingsError as exc:
        print(f"central-hub: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import uvicorn

    from facade.app import create_app

    try:
        app = create_app(settings)
    except (ValueError, ImportError) as exc:
        print(f"central-hub: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
