"""A deployment executor for local processes: start the new version, stop the old.

It follows one deployment's events (``GET /deployments/{id}/events``, server-sent,
resumed with ``Last-Event-ID`` on any hub replica after a disconnect) and, for every
``draining`` event naming an instance it runs, starts the target version on a fresh
port and then stops the drained process with SIGTERM (BaseService deregisters first).
It returns the deployment's final record when the deployment ends. The hub decides
which instances change when; this class only replaces processes (docs/deployments.md).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

log = logging.getLogger("local_executor")

TERMINAL = {"succeeded", "failed", "aborted"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalExecutor:
    """Runs a service's instances as local processes and replaces them on request.

    ``command`` is the argument list of one instance, with ``{port}`` and ``{version}``
    filled in per instance; ``hub_urls`` are the hub replicas (tried in turn).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        hub_urls: Sequence[str],
        token: str | None,
        workdir: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.hub_urls = list(hub_urls)
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.workdir = workdir
        self.cwd = cwd
        self.env = env
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.versions: dict[int, str] = {}
        self.replaced: list[tuple[int, int]] = []
        """(old port, new port) pairs, in order."""

    def start(self, version: str, *extra: str) -> int:
        """Start one instance of ``version``; return its port."""
        port = free_port()
        args = [a.format(port=port, version=version) for a in self.command] + list(extra)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"instance-{port}.log", "ab") as out:
            self.processes[port] = subprocess.Popen(
                args, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.versions[port] = version
        log.info("started %s on port %d", version, port)
        return port

    def stop(self, port: int, timeout: float = 15.0) -> None:
        """SIGTERM the instance on ``port`` (SIGKILL if it does not exit in time)."""
        proc = self.processes.pop(port, None)
        self.versions.pop(port, None)
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.info("stopped port %d", port)

    def stop_all(self) -> None:
        """Stop every instance this executor started."""
        for port in list(self.processes):
            self.stop(port)

    def handle(self, event: dict[str, Any], extra: Sequence[str] = ()) -> None:
        """Act on one deployment event: replace a drained instance we run."""
        if event.get("type") != "draining":
            return
        port = event.get("port")
        if not isinstance(port, int) or port not in self.processes:
            return  # not ours (another executor's host), or already replaced
        new = self.start(str(event["desired_version"]), *extra)
        self.stop(port)
        self.replaced.append((port, new))

    def follow(
        self, deployment_id: str, *, timeout: float = 300.0, extra: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Carry out a deployment until it ends; return its final record.

        ``extra`` are more arguments for the new instances (e.g. to start a broken
        version on purpose in a test).
        """
        deadline = time.monotonic() + timeout
        last_seen = 0
        attempt = 0
        while time.monotonic() < deadline:
            url = self.hub_urls[attempt % len(self.hub_urls)]
            attempt += 1
            try:
                with httpx.Client(base_url=url, headers=self.headers, timeout=30.0) as hub:
                    headers = {"last-event-id": str(last_seen)} if last_seen else {}
                    with hub.stream(
                        "GET", f"/deployments/{deployment_id}/events", headers=headers
                    ) as stream:
                        stream.raise_for_status()
                        for line in stream.iter_lines():
                            if not line.startswith("data: "):
                                continue
                            event = orjson.loads(line[6:])
                            last_seen = int(event["seq"])
                            self.handle(event, extra)
                            if event["type"] in TERMINAL:
                                final: dict[str, Any] = (
                                    hub.get(f"/deployments/{deployment_id}").raise_for_status()
                                ).json()
                                return final
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                log.warning("hub %s: %s; resuming after event %d", url, exc, last_seen)
                time.sleep(0.2)
        raise TimeoutError(f"deployment {deployment_id} did not end within {timeout}s")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m examples.local_executor --hub-url URL --version v1 [--deployment ID]
    -- COMMAND...``: start ``--instances`` instances of ``--version`` and, with
    ``--deployment``, carry that deployment out (else run until SIGINT/SIGTERM)."""
    import argparse

    parser = argparse.ArgumentParser(prog="local_executor", description=__doc__)
    parser.add_argument("--hub-url", action="append", required=True)
    parser.add_argument("--instances", type=int, default=2, help="instances to start first")
    parser.add_argument("--version", required=True, help="version of the first instances")
    parser.add_argument("--deployment", help="deployment id to carry out (else: just run)")
    parser.add_argument("command", nargs="+", help="instance command with {port} {version}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    executor = LocalExecutor(
        args.command,
        hub_urls=args.hub_url,
        token=os.environ.get("CENTRAL_HUB_TOKEN"),
        workdir=Path("local-executor-logs"),
    )
    try:
        for _ in range(args.instances):
            executor.start(args.version)
        if args.deployment:
            final = executor.follow(args.deployment)
            print(orjson.dumps({k: final[k] for k in ("id", "state", "reason")}).decode())
        else:
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        executor.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
