"""``central-hub deploy start|status|pause|resume|abort|promote``: deployments through a
running hub."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from shared.errors import HubError, error_from_payload


def add_deploy_parser(sub: Any, connection: argparse.ArgumentParser) -> None:
    """Add the ``deploy`` command and its actions to the ``central-hub`` parser."""
    deploy = sub.add_parser(
        "deploy", help="start and control deployments (docs/deployments.md)", parents=[connection]
    )
    actions = deploy.add_subparsers(dest="action", required=True)
    start = actions.add_parser(
        "start", help="start a rolling (or canary) deployment", parents=[connection]
    )
    start.add_argument("service")
    start.add_argument("version")
    start.add_argument("--batch-size", type=int, default=1)
    start.add_argument("--max-unavailable", type=int)
    start.add_argument("--min-healthy-seconds", type=float)
    start.add_argument("--max-failure-rate", type=float)
    start.add_argument(
        "--canary-tenant", action="append", dest="tenants", help="canary: a tenant given it first"
    )
    start.add_argument("--canary-percent", type=int, help="canary: share of discovery answers")
    status = actions.add_parser(
        "status", help="one deployment, or the list (--service, --state)", parents=[connection]
    )
    status.add_argument("deployment_id", nargs="?")
    status.add_argument("--service")
    status.add_argument("--state")
    for action in ("pause", "resume", "abort", "promote"):
        parser = actions.add_parser(action, help=f"{action} a deployment", parents=[connection])
        parser.add_argument("deployment_id")


def start_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /deployments`` body of ``deploy start`` (the spec's call)."""
    canary = bool(args.tenants) or args.canary_percent is not None
    body: dict[str, Any] = {
        "service": args.service,
        "version": args.version,
        "strategy": "canary" if canary else "rolling",
        "batch_size": args.batch_size,
    }
    optional = {
        "max_unavailable": args.max_unavailable,
        "min_healthy_seconds": args.min_healthy_seconds,
        "max_failure_rate": args.max_failure_rate,
        "tenants": args.tenants,
        "weight_percent": args.canary_percent,
    }
    return body | {k: v for k, v in optional.items() if v is not None}


def deploy(args: argparse.Namespace, url: str, secret: str) -> tuple[int, HubError | None]:
    """Run one ``deploy`` action; prints the hub's answer. Returns the exit code and the
    hub's error (the caller prints it)."""
    headers = {"authorization": f"Bearer {secret}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            if args.action == "start":
                resp = client.post("/deployments", json=start_body(args))
            elif args.action == "status" and args.deployment_id:
                resp = client.get(f"/deployments/{args.deployment_id}")
            elif args.action == "status":
                params = {k: v for k, v in (("service", args.service), ("state", args.state)) if v}
                resp = client.get("/deployments", params=params)
            else:
                resp = client.post(f"/deployments/{args.deployment_id}/{args.action}")
    except httpx.HTTPError as exc:
        print(f"central-hub: cannot reach the hub at {url}: {exc}", file=sys.stderr)
        return 1, None
    if resp.status_code >= 400:
        try:
            payload = resp.json() if resp.content else None
        except ValueError:
            payload = None
        return 1, error_from_payload(payload)
    print(json.dumps(resp.json(), indent=2))
    return 0, None
