"""Real ``central-hub run`` processes for integration tests and benchmarks.

Each hub binds 127.0.0.1 on a free port, logs to a file (shown when a test fails) and is
stopped by the PID of the process started here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.etcd_cluster import free_port

_LIVE: list[HubProcess] = []


class HubProcess:
    """One hub server process on the etcd backend."""

    def __init__(
        self,
        log_dir: Path,
        *,
        etcd_endpoints: list[str],
        namespace: str,
        name: str = "hub",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.etcd_endpoints = etcd_endpoints
        self.namespace = namespace
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> HubProcess:
        """Start the process; with ``wait``, until ``/health`` answers at all."""
        env = {
            **os.environ,
            "HUB_BACKEND": "etcd",
            "HUB_ETCD_ENDPOINTS": ",".join(self.etcd_endpoints),
            "HUB_ETCD_NAMESPACE": self.namespace,
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(self.port),
            "HUB_LOG_LEVEL": "info",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "facade.cli", "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            log.close()
        _LIVE.append(self)
        if wait:
            self.wait_answering(timeout)
        return self

    def wait_answering(self, timeout: float = 30.0) -> None:
        """Wait until the HTTP server answers ``/health`` (healthy or not)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"hub {self.name} exited:\n{self.log_tail()}")
            try:
                httpx.get(f"{self.url}/health", timeout=5)
                return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub {self.name} not answering:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not exit."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        if self in _LIVE:
            _LIVE.remove(self)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def live_hubs() -> list[HubProcess]:
    """Hub processes started here and not yet stopped."""
    return list(_LIVE)


def registration(name: str, port: int, **fields: Any) -> dict[str, Any]:
    """A minimal registration body for an instance on 127.0.0.1."""
    return {"name": name, "host": "127.0.0.1", "port": port, **fields}
