"""The ``central-hub`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from facade.cli.connection import (
    NoAdminToken,
    admin_secret,
    describe_error,
    hub_url,
)
from facade.cli.deploy import add_deploy_parser, deploy
from facade.settings import HubSettings, SettingsError, load_settings
from shared.errors import HubError


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
        "--require-backend",
        action="store_const",
        const=True,
        help="exit at start-up if the backend cannot be reached (HUB_REQUIRE_BACKEND)",
    )
    run.add_argument(
        "--dev",
        action="store_const",
        const=True,
        help="no authentication at all; only on a loopback address (HUB_DEV)",
    )

    # --url and --token-file are accepted before and after the action (`token list --url`).
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="the hub's address (default: http://HUB_HOST:HUB_PORT, else 127.0.0.1:7000)",
    )
    connection.add_argument(
        "--token-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="file holding an admin token (default: HUB_TOKEN_FILE, else "
        "HUB_DATA_DIR/admin-token, the bootstrap token file); HUB_TOKEN wins",
    )
    token = sub.add_parser(
        "token", help="manage API tokens through a running hub", parents=[connection]
    )
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="issue a token (its secret is printed once)", parents=[connection]
    )
    create.add_argument("--role", required=True, help="admin|service|gateway|tenant|read-only")
    create.add_argument("--name", required=True, help="what the token is for")
    create.add_argument("--tenant-id", help="tenant tokens: their tenant")
    create.add_argument(
        "--service", action="append", dest="services", help="service tokens: a service name"
    )
    actions.add_parser("list", help="list tokens (never secrets)", parents=[connection])
    revoke = actions.add_parser("revoke", help="revoke a token by id", parents=[connection])
    revoke.add_argument("token_id")
    from facade.cli import backup

    backup.add_commands(sub, connection)
    add_deploy_parser(sub, connection)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "token":
        return _token(args)
    if args.command in ("backup", "migrate"):
        from facade.cli import backup

        return backup.run(args)
    if args.command == "deploy":
        return _deploy(args)
    return 2


def _token(args: argparse.Namespace) -> int:
    import httpx

    from shared.errors import error_from_payload

    url = hub_url(args)
    try:
        secret = admin_secret(args)
    except NoAdminToken as exc:
        print(f"central-hub: {exc}", file=sys.stderr)
        return 2
    headers = {"authorization": f"Bearer {secret}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
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
        print(f"central-hub: cannot reach the hub at {url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code >= 400:
        try:
            payload = resp.json() if resp.content else None
        except ValueError:
            payload = None
        error = error_from_payload(payload)
        print(f"central-hub: {describe_error(error)}", file=sys.stderr)
        return 1
    print(json.dumps(resp.json(), indent=2))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    url = hub_url(args)
    try:
        secret = admin_secret(args)
    except NoAdminToken as exc:
        print(f"central-hub: {exc}", file=sys.stderr)
        return 2
    code, error = deploy(args, url, secret)
    if error is not None:
        print(f"central-hub: {describe_error(error)}", file=sys.stderr)
    return code


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
            require_backend=args.require_backend,
        )
    except SettingsError as exc:
        print(f"central-hub: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from facade.cli.server import bind, serve

    # What makes a start hopeless is checked before anything is written: a half-started
    # hub (e.g. one that bootstrapped, then could not listen) helps no one.
    problem = _unusable_data_dir(settings) or _unreachable_backend(settings)
    if problem:
        print(f"central-hub: {problem}", file=sys.stderr)
        return 1
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"central-hub: cannot listen on {settings.host}:{settings.port} "
            f"(HUB_HOST / HUB_PORT): {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1

    from facade.app import create_app

    try:
        app = create_app(settings)
    except (ValueError, ImportError) as exc:
        sock.close()
        print(f"central-hub: {exc}", file=sys.stderr)
        return 2
    serve(app, settings, sock)
    return 0


def _unusable_data_dir(settings: HubSettings) -> str | None:
    """Why the data directory (embedded store, bootstrap token file) is unusable, if it is."""
    directories = []
    if settings.backend == "embedded":
        directories.append(settings.data_dir)
    if settings.admin_token is None and not settings.dev:  # the bootstrap token's file
        directories.append(settings.bootstrap_token_path.parent)
    for directory in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            return (
                f"the data directory {str(directory)!r} is not usable (HUB_DATA_DIR / "
                f"--data-dir): {exc.strerror or exc}"
            )
    return None


def _unreachable_backend(settings: HubSettings) -> str | None:
    """Why the backend cannot be opened, if it cannot: always checked for the embedded
    store (local, so nothing to wait for), for the others with --require-backend."""
    if not settings.require_backend and settings.backend != "embedded":
        return None
    from adapters import create_backend

    async def probe() -> str | None:
        backend = create_backend(settings.backend, **settings.backend_options())
        try:
            await backend.open()
            await backend.current_revision()
        except HubError as exc:
            if settings.backend == "embedded":
                return f"the embedded store cannot be opened (HUB_DATA_DIR / --data-dir): {exc}"
            return (
                f"backend {settings.backend} unreachable at start-up (tried "
                f"{_endpoint_of(backend.describe())}) and --require-backend is set: {exc}"
            )
        finally:
            await backend.close()
        return None

    return asyncio.run(probe())


def _endpoint_of(described: dict[str, object]) -> str:
    for key in ("endpoints", "address", "path"):
        if key in described:
            value = described[key]
            return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return str(described)


if __name__ == "__main__":
    sys.exit(main())
