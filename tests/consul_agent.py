"""A real Consul agent (``consul agent -dev``) for the live Consul suites.

The binary is Debian bullseye's ``consul`` package (1.8.7, MPL-2.0), installed by
``scripts/ensure_test_services.sh``. The agent listens only on 127.0.0.1, on ports that were
free when it started (HTTP, DNS, serf LAN/WAN, server RPC, gRPC), keeps its data and log in
a directory of its own, and is stopped by the PID of the process this module started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.etcd_cluster import free_port

START_TIMEOUT = 60.0


def consul_binary() -> str | None:
    """The ``consul`` executable on PATH, or None."""
    return shutil.which("consul")


class ConsulDevAgent:
    """One ``consul agent -dev`` process on loopback ports."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "consul.log"
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The agent's HTTP address, as ``CONSUL_HTTP_ADDR`` spells it."""
        return f"127.0.0.1:{self.http_port}"

    def start(self, timeout: float = START_TIMEOUT) -> ConsulDevAgent:
        """Start the agent and wait until it has a leader and has synced its own node."""
        binary = consul_binary()
        if binary is None:
            raise RuntimeError("no consul binary on PATH")
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        args = [
            binary,
            "agent",
            "-dev",
            f"-node=hub-test-{os.getpid()}",
            "-bind=127.0.0.1",
            "-client=127.0.0.1",
            f"-data-dir={self.data_dir}",
            f"-http-port={self.http_port}",
            f"-dns-port={free_port()}",
            f"-grpc-port={free_port()}",
            f"-serf-lan-port={free_port()}",
            f"-serf-wan-port={free_port()}",
            f"-server-port={free_port()}",
            "-log-level=warn",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"consul agent exited at start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"consul agent not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def ready(self) -> bool:
        """Whether the agent has a raft leader and lists its own node in the catalog."""
        try:
            leader = _get_json(f"http://{self.address}/v1/status/leader")
            nodes = _get_json(f"http://{self.address}/v1/catalog/nodes")
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return bool(leader) and bool(nodes)

    def stop(self) -> None:
        """Stop the agent by its PID (SIGTERM, then SIGKILL if it lingers)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=15)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the agent's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())
