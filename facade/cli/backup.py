"""``central-hub backup create|restore`` and ``central-hub migrate`` (issue 14).

Every refusal is one line on stderr and a non-zero exit: 1 for a refused file, a
non-empty target or an unreachable hub/backend, 2 for bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from facade.cli.connection import NoAdminToken, admin_secret, describe_error, hub_url
from shared.errors import HubError

BACKEND_FLAGS = ("backend", "data_dir", "etcd_endpoints", "etcd_namespace", "consul_address")


def add_backend_flags(parser: argparse.ArgumentParser, *, backend_flag: str = "--backend") -> None:
    """Where a backend is (flags override the ``HUB_*`` environment)."""
    parser.add_argument(backend_flag, dest="backend", help="embedded | etcd | consul")
    parser.add_argument("--data-dir", help="embedded backend directory (HUB_DATA_DIR)")
    parser.add_argument("--etcd-endpoints", help="etcd URLs, comma-separated")
    parser.add_argument("--etcd-namespace", help="etcd key namespace")
    parser.add_argument("--consul-address", help="Consul agent HTTP address")


def add_commands(
    sub: argparse._SubParsersAction,
    connection: argparse.ArgumentParser,
) -> None:
    """Add ``backup`` and ``migrate`` to the ``central-hub`` parser."""
    backup = sub.add_parser("backup", help="back up or restore the hub's state")
    actions = backup.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create",
        help="write a backup file: from a running hub (POST /admin/backups, admin token) "
        "or, with --offline, straight from the backend in the settings",
        parents=[connection],
    )
    create.add_argument("--out", type=Path, required=True, help="the file to write")
    create.add_argument("--offline", action="store_true", help="read the backend directly")
    create.add_argument("--audit", action="store_true", help="include the audit log")
    add_backend_flags(create)
    restore = actions.add_parser(
        "restore",
        help="restore a backup file into the backend in the settings (an empty keyspace)",
    )
    restore.add_argument("file", type=Path)
    restore.add_argument(
        "--force", action="store_true", help="replace a non-empty keyspace (all of it)"
    )
    add_backend_flags(restore)
    migrate = sub.add_parser(
        "migrate",
        help="copy a running hub's state to another backend and print the settings to change",
        parents=[connection],
    )
    migrate.add_argument("--to", required=True, choices=["embedded", "etcd", "consul"])
    migrate.add_argument("--data-dir", help="--to embedded: the new store's directory")
    migrate.add_argument("--etcd-endpoints", help="--to etcd: the cluster's URLs")
    migrate.add_argument("--etcd-namespace", help="--to etcd: key namespace (default hub)")
    migrate.add_argument("--consul-address", help="--to consul: the agent's HTTP address")
    migrate.add_argument("--force", action="store_true", help="replace a non-empty target")
    migrate.add_argument("--audit", action="store_true", help="copy the audit log too")
    migrate.add_argument(
        "--no-pause",
        action="store_true",
        help="do not make the hub read-only during the copy (writes made meanwhile may be "
        "missing from the target)",
    )
    migrate.add_argument(
        "--replica",
        action="append",
        default=[],
        metavar="URL",
        help="another replica of the same hub (repeatable): before copying, wait until it "
        "refuses writes and has finished the ones it had accepted",
    )
    migrate.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds to wait after pausing writes, for every replica to see the pause and "
        "finish the writes it had accepted (default 1)",
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch ``backup`` / ``migrate``; returns the exit code."""
    if args.command == "migrate":
        return _migrate(args)
    if args.action == "create":
        return _create(args)
    return _restore(args)


def _fail(message: str, code: int = 1) -> int:
    print(f"central-hub: {message}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace, **override: Any) -> Any:
    from facade.settings import load_settings

    flags = {name: getattr(args, name, None) for name in BACKEND_FLAGS}
    return load_settings(**(flags | override))


def _summary(header: dict[str, Any], **extra: Any) -> str:
    shown = {k: header.get(k) for k in ("source_backend", "revision", "created_at", "counts")}
    return json.dumps(shown | extra, indent=2)


# -- backup create ------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    from facade.coordination.backup_file import read_backup_file

    out: Path = args.out
    if args.offline:
        return _create_offline(args, out)
    partial = out.with_name(f".{out.name}.download")
    problem = _download(args, partial)
    if problem:
        partial.unlink(missing_ok=True)
        return _fail(problem)
    try:
        backup = read_backup_file(partial)  # never leave an unverified file behind
    except HubError as exc:
        partial.unlink(missing_ok=True)
        return _fail(exc.message)
    partial.replace(out)
    print(_summary(backup.header, file=str(out), bytes=out.stat().st_size))
    return 0


def _create_offline(args: argparse.Namespace, out: Path) -> int:
    from adapters import create_backend
    from facade.coordination.backup_file import write_backup
    from facade.coordination.backups import create_backup
    from facade.settings import SettingsError

    try:
        settings = _settings(args)
    except SettingsError as exc:
        return _fail(str(exc), 2)

    async def go() -> Any:
        backend = create_backend(settings.backend, **settings.backend_options())
        await backend.open()
        try:
            return await create_backup(backend, include_audit=args.audit)
        finally:
            await backend.close()

    try:
        backup = asyncio.run(go())
        size = write_backup(backup, out)
    except HubError as exc:
        return _fail(f"backup failed: {exc.message}")
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror or exc}")
    print(_summary(backup.header, file=str(out), bytes=size))
    return 0


def _admin_client_args(args: argparse.Namespace) -> tuple[str, dict[str, str]] | str:
    try:
        secret = admin_secret(args)
    except NoAdminToken as exc:
        return str(exc)
    return hub_url(args), {"authorization": f"Bearer {secret}"}


def _download(args: argparse.Namespace, path: Path) -> str | None:
    """Stream ``POST /admin/backups`` into ``path``; the reason it failed, if it did."""
    import httpx

    from shared.errors import error_from_payload

    target = _admin_client_args(args)
    if isinstance(target, str):
        return target
    url, headers = target
    params = {"audit": "true"} if getattr(args, "audit", False) else {}
    try:
        with (
            httpx.Client(base_url=url, headers=headers, timeout=60) as client,
            client.stream("POST", "/admin/backups", params=params) as resp,
        ):
            if resp.status_code >= 400:
                resp.read()
                try:
                    payload = resp.json() if resp.content else None
                except ValueError:
                    payload = None
                return describe_error(error_from_payload(payload))
            with path.open("wb") as out:
                for chunk in resp.iter_bytes():
                    out.write(chunk)
    except httpx.HTTPError as exc:
        return f"cannot reach the hub at {url}: {exc}"
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


# -- backup restore -----------------------------------------------------------------------


def _restore(args: argparse.Namespace) -> int:
    from facade.coordination.backup_file import read_backup_file
    from facade.settings import SettingsError

    # The whole file is verified before any backend is even opened.
    try:
        backup = read_backup_file(args.file)
    except HubError as exc:
        return _fail(exc.message)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        return _fail(str(exc), 2)
    return _restore_into(settings, backup, force=args.force)


def _restore_into(settings: Any, backup: Any, *, force: bool, verify: bool = False) -> int:
    from adapters import create_backend
    from facade.coordination.backups import LEASES_NOTE, create_backup, restore_backup

    async def go() -> tuple[Any, list[str]]:
        backend = create_backend(settings.backend, **settings.backend_options())
        await backend.open()
        try:
            report = await restore_backup(backend, backup, force=force)
            # Read the target back: every key of the snapshot, with the same value.
            problems = differences(backup.items, (await create_backup(backend)).items)
            return report, problems if verify else []
        finally:
            await backend.close()

    try:
        report, problems = asyncio.run(go())
    except HubError as exc:
        return _fail(f"restore refused: {exc.message}")
    if problems:
        return _fail(f"the target does not match the snapshot: {'; '.join(problems[:5])}")
    body = report.as_dict() | {"backend": settings.backend, "leases": LEASES_NOTE}
    if verify:
        body["verified_keys"] = len(backup.items)
    if not report.revisions_kept:
        body["note"] = (
            "keys got new revisions: config and tenant versions (ETags) differ from the "
            "source's; clients re-read them"
        )
    print(json.dumps(body, indent=2))
    return 0


def differences(expected: list[Any], actual: list[Any]) -> list[str]:
    """How the keys read back from a target differ from a snapshot's (empty: identical)."""
    want = {kv.key: kv.value for kv in expected}
    have = {kv.key: kv.value for kv in actual}
    problems = [f"{key} missing" for key in sorted(want.keys() - have.keys())]
    problems += [f"{key} unexpected" for key in sorted(have.keys() - want.keys())]
    both = sorted(want.keys() & have.keys())
    problems += [f"{key} differs" for key in both if want[key] != have[key]]
    return problems


# -- migrate ---------------------------------------------------------------------------


def target_settings_env(args: argparse.Namespace) -> dict[str, str]:
    """The ``HUB_*`` settings a hub needs to run on the migration's target."""
    env = {"HUB_BACKEND": args.to}
    if args.to == "embedded":
        env["HUB_DATA_DIR"] = str(args.data_dir)
    elif args.to == "etcd":
        env["HUB_ETCD_ENDPOINTS"] = str(args.etcd_endpoints)
        if args.etcd_namespace:
            env["HUB_ETCD_NAMESPACE"] = args.etcd_namespace
    else:
        if args.consul_address:
            env["HUB_CONSUL_ADDRESS"] = args.consul_address
    return env


def _migrate(args: argparse.Namespace) -> int:
    from facade.settings import SettingsError

    required = {"embedded": "data_dir", "etcd": "etcd_endpoints"}.get(args.to)
    if required and not getattr(args, required):
        return _fail(f"--to {args.to} needs --{required.replace('_', '-')}", 2)
    try:
        settings = _settings(args, backend=args.to)
    except SettingsError as exc:
        return _fail(str(exc), 2)
    if args.no_pause:
        return _copy(args, settings, paused=False)
    started = _pause_writes(args)
    if isinstance(started, str):
        return _fail(f"{started}; nothing was copied (--no-pause copies without pausing)")
    paused_here, t0 = started
    previous = signal.signal(signal.SIGTERM, _interrupted)
    code = 1
    try:
        if args.settle > 0:
            time.sleep(args.settle)
        problem = _replicas_paused(args)
        code = _fail(problem) if problem else _copy(args, settings, paused=True)
    except KeyboardInterrupt:
        code = _fail("interrupted: the target may hold part of the copy (rerun with --force)", 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        # Always lift the pause we put (a copy that failed or was interrupted included);
        # a pause the operator had already set stays theirs to lift.
        if paused_here:
            problem = _resume_writes(args)
            if problem:
                print(
                    f"central-hub: WARNING: writes are still paused: {problem}; turn the "
                    "mode off with DELETE /admin/maintenance (admin token)",
                    file=sys.stderr,
                )
                code = code or 1
            print(f"# writes were paused for {time.monotonic() - t0:.3f} s", file=sys.stderr)
        else:
            print("# writes stay paused: the hub was already read-only before migrate")
        sys.stdout.flush()
    return code


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _copy(args: argparse.Namespace, settings: Any, *, paused: bool) -> int:
    """Snapshot the running hub, restore into the target, verify it; print the settings."""
    from facade.coordination.backup_file import read_backup_file

    with tempfile.TemporaryDirectory(prefix="hub-migrate-") as tmp:
        path = Path(tmp) / "snapshot.jsonl.gz"
        problem = _download(args, path)
        if problem:
            return _fail(problem)
        try:
            backup = read_backup_file(path)
        except HubError as exc:
            return _fail(exc.message)
    code = _restore_into(settings, backup, force=args.force, verify=True)
    if code:
        return code
    later = None if paused else _source_revision(args)
    print("# then restart every hub replica with:")
    for name, value in target_settings_env(args).items():
        print(f"{name}={value}")
    if later is not None and later > backup.revision:
        # Health results and instance registrations move the revision too; only the
        # operator knows whether writers were paused.
        print(
            f"central-hub: warning: the source's revision moved after the snapshot "
            f"({backup.revision} -> {later}); writes made since are not in the target "
            "unless they were health or heartbeat changes: rerun without --no-pause "
            "and with --force to be sure",
            file=sys.stderr,
        )
    return 0


def _maintenance(args: argparse.Namespace, method: str, body: Any = None) -> dict[str, Any] | str:
    """One call to ``/admin/maintenance``: the answer, or why it failed."""
    import httpx

    from shared.errors import error_from_payload

    target = _admin_client_args(args)
    if isinstance(target, str):
        return target
    url, headers = target
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            resp = client.request(method, "/admin/maintenance", json=body)
    except httpx.HTTPError as exc:
        return f"cannot reach the hub at {url}: {exc}"
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if resp.status_code >= 400 or not isinstance(payload, dict):
        return describe_error(error_from_payload(payload))
    return payload


def _pause_writes(args: argparse.Namespace) -> tuple[bool, float] | str:
    """Make the hub read-only; (whether this call turned it on, when), or why it failed."""
    now = _maintenance(args, "GET")
    if isinstance(now, str):
        return f"cannot pause writes: {now}"
    if now.get("read_only"):
        return False, time.monotonic()
    t0 = time.monotonic()
    body = {"read_only": True, "reason": f"central-hub migrate to {args.to}", "retry_after": 10}
    answer = _maintenance(args, "PUT", body)
    if isinstance(answer, str):
        return f"cannot pause writes: {answer}"
    if answer.get("replica", {}).get("drained") is False:
        # A write accepted before the pause is still running: the snapshot could miss it.
        _resume_writes(args)
        return "cannot pause writes: the hub's writes under way did not finish in time"
    print(f"# writes paused (reason: {body['reason']}); reads and heartbeats continue", flush=True)
    return True, t0


def _replicas_paused(args: argparse.Namespace, timeout: float = 30.0) -> str | None:
    """Wait until every ``--replica`` refuses writes and has none in flight; or why not."""
    for url in args.replica:
        replica = argparse.Namespace(**{**vars(args), "url": url})
        deadline = time.monotonic() + timeout
        while True:
            answer = _maintenance(replica, "GET")
            if isinstance(answer, str):
                return f"replica {url}: {answer}; nothing was copied"
            in_flight = answer.get("replica", {}).get("in_flight_writes")
            if answer.get("read_only") and in_flight == 0:
                break
            if time.monotonic() > deadline:
                return (
                    f"replica {url} did not settle in {timeout:.0f} s (read_only="
                    f"{answer.get('read_only')}, in-flight writes={in_flight}); nothing was copied"
                )
            time.sleep(0.05)
    return None


def _resume_writes(args: argparse.Namespace) -> str | None:
    answer = _maintenance(args, "DELETE")
    if isinstance(answer, str):
        return answer
    print("# writes resumed")
    return None


def _source_revision(args: argparse.Namespace) -> int | None:
    """The running hub's view revision now (to tell whether it wrote after the copy)."""
    import httpx

    target = _admin_client_args(args)
    if isinstance(target, str):
        return None
    url, headers = target
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            body = client.get("/health").json()
    except (httpx.HTTPError, ValueError):
        return None
    view = body.get("view") if isinstance(body, dict) else None
    revision = view.get("revision") if isinstance(view, dict) else None
    return revision if isinstance(revision, int) else None
