"""The ``central-hub`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from facade.settings import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="central-hub", description="Central Hub")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve the hub API (settings: HUB_* environment)")
    run.add_argument("--host", help="bind address (HUB_HOST, default 127.0.0.1)")
    run.add_argument("--port", help="port (HUB_PORT, default 7000)")
    run.add_argument("--backend", help="embedded | etcd | consul (HUB_BACKEND)")
    run.add_argument("--data-dir", help="embedded backend directory (HUB_DATA_DIR)")
    run.add_argument("--etcd-endpoints", help="etcd URLs, comma-separated (HUB_ETCD_ENDPOINTS)")
    run.add_argument("--etcd-namespace", help="etcd key namespace (HUB_ETCD_NAMESPACE)")
    run.add_argument("--log-level", help="debug | info | warning | error (HUB_LOG_LEVEL)")
    run.add_argument(
        "--dev",
        action="store_const",
        const=True,
        help="no authentication at all; only on a loopback address (HUB_DEV)",
    )

    token = sub.add_parser("token", help="manage API tokens through a running hub")
    token.add_argument("--url", default="http://127.0.0.1:7000", help="the hub's address")
    token.add_argument(
        "--token-file",
        type=Path,
        default=Path("hub-data") / "admin-token",
        help="file holding an admin token (default: the bootstrap token file); "
        "the HUB_TOKEN environment variable wins",
    )
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue a token (its secret is printed once)")
    create.add_argument("--role", required=True, help="admin|service|gateway|tenant|read-only")
    create.add_argument("--name", required=True, help="what the token is for")
    create.add_argument("--tenant-id", help="tenant tokens: their tenant")
    create.add_argument(
        "--service", action="append", dest="services", help="service tokens: a service name"
    )
    actions.add_parser("list", help="list tokens (never secrets)")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "token":
        return _token(args)
    return 2


def _token(args: argparse.Namespace) -> int:
    import httpx

    from shared.errors import error_from_payload

    secret = os.environ.get("HUB_TOKEN")
    if not secret:
        try:
            secret = args.token_file.read_text().strip()
        except OSError as exc:
            print(
                f"central-hub: no admin token: set HUB_TOKEN or --token-file ({exc})",
                file=sys.stderr,
            )
            return 2
    headers = {"authorization": f"Bearer {secret}"}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=10) as client:
            if args.action == "create":
                body = {"role": args.role, "name": args.name}
                if args.tenant_id:
                    body["tenant_id"] = args.tenant_id
                if args.services:
                    body["services"] = args.services
                resp = client.post("/tokens", json=body)
            elif args.action == "list":
                resp = client.get("/tokens")
            else:
                resp = client.delete(f"/tokens/{args.token_id}")
    except httpx.HTTPError as exc:
        print(f"central-hub: cannot reach the hub at {args.url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code >= 400:
        error = error_from_payload(resp.json() if resp.content else None)
        print(f"central-hub: {error.code}: {error.message}", file=sys.stderr)
        return 1
    print(json.dumps(resp.json(), indent=2))
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(
            host=args.host,
            port=args.port,
            backend=args.backend,
            data_dir=args.data_dir,
            etcd_endpoints=args.etcd_endpoints,
            etcd_namespace=args.etcd_namespace,
            log_level=args.log_level,
            dev=args.dev,
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
        # Long polls and event streams would otherwise hold a SIGTERM for up to their
        # wait (minutes); after this many seconds the remaining requests are cancelled.
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
