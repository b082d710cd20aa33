"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, a throwaway
cluster in a temporary directory, one free loopback port, stopped by its PID.

Run as root (CI), the cluster belongs to the ``postgres`` system user (initdb and the
server refuse to run as root): the processes are started with ``user=`` so the PID held
here is the server's own. ``scripts/ensure_test_services.sh`` installs the package.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import free_port

APP_ROLE = "app"
APP_PASSWORD = "app-test-password"


def postgres_bin_dir() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` with initdb, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """One PostgreSQL cluster: ``start()``, ``url`` for the app role, ``stop()``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # initdb and postgres refuse root: run them as the package's system user then.
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run_as(self) -> dict[str, object]:
        return {"user": self.user, "group": self.user} if self.user else {}

    def start(self) -> PostgresServer:
        """initdb, start the server on 127.0.0.1:<port>, create the app role and database."""
        data = self.root / "data"
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **self._run_as(),  # type: ignore[arg-type]
        )
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - held while it runs
        self.proc = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.root}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=40",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            **self._run_as(),  # type: ignore[arg-type]
        )
        log.close()
        self._wait_ready()
        self.psql(
            f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}' NOSUPERUSER NOBYPASSRLS",
            f"CREATE DATABASE {APP_ROLE} OWNER {APP_ROLE}",
        )
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'server.log').read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                ready = subprocess.run(
                    [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                    capture_output=True,
                )
                if ready.returncode == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("postgres did not become ready")

    def psql(self, *statements: str) -> None:
        """Run statements as the superuser (setup only)."""
        for statement in statements:
            subprocess.run(
                [
                    str(self.bin_dir / "psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    statement,
                ],
                check=True,
                capture_output=True,
            )

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the app role's database (an ordinary role: RLS applies)."""
        return f"postgresql+asyncpg://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{self.port}/{APP_ROLE}"

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT), SIGKILL if it lingers; remove the cluster."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
