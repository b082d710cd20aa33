"""Real hub processes for integration tests: started on loopback, stopped by PID."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

TEST_ADMIN_TOKEN = "test-admin-" + secrets.token_urlsafe(32)
"""The admin token every test hub process accepts (so replicas share one)."""
ADMIN_HEADERS = {"authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


class HubProcess:
    """One ``central-hub run`` process on 127.0.0.1 with its log kept in a file."""

    def __init__(
        self,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
        admin_token: str | None = "generate",
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        if admin_token == "generate":
            admin_token = TEST_ADMIN_TOKEN
        self.admin_token = admin_token
        self.env = {k: v for k, v in os.environ.items() if k != "HUB_ADMIN_TOKEN"}
        self.env["HUB_LOG_LEVEL"] = "info"
        # Test instances mostly point at ports nothing listens on; tests of active health
        # checks turn probing back on with env={"HUB_PROBING": "true"}.
        self.env["HUB_PROBING"] = "false"
        if admin_token is not None:
            self.env["HUB_ADMIN_TOKEN"] = admin_token
        self.env.update(env or {})
        self.args = args or []
        self.log_path = workdir / f"hub-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the hub."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> HubProcess:
        """Spawn the process; with ``wait``, return once ``/health`` answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "facade.cli.main",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the hub answers ``/health`` (any status) or fail with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/health", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"hub did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """The process's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, token: str | None = "admin", **kwargs: Any) -> httpx.Client:
        """A client for this hub, as admin unless another ``token`` (or None) is given."""
        token = self.admin_token if token == "admin" else token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=10.0, headers=headers, **kwargs)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
