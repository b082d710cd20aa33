"""Shared benchmark plumbing: hub processes, wrk runs, percentiles."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = textwrap.dedent(
    """
    local paths = {}
    local i = 0
    function init(args)
      for line in io.lines(args[1]) do paths[#paths + 1] = line end
      if args[2] then
        local f = io.open(args[2], "rb")
        wrk.method = "POST"
        wrk.body = f:read("*a")
        wrk.headers["Content-Type"] = "application/json"
        f:close()
      end
    end
    function request()
      i = i + 1
      return wrk.format(nil, paths[(i % #paths) + 1])
    end
    function done(summary, latency, requests)
      io.write(string.format(
        "WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, "
        .. "\\"non2xx\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, "
        .. "\\"max_us\\": %d}\\n",
        summary.requests, summary.duration,
        summary.errors.connect + summary.errors.read + summary.errors.write
          + summary.errors.timeout,
        summary.errors.status,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
    end
    """
)


@dataclass
class LoadResult:
    """What one load run measured."""

    label: str
    requests: int
    seconds: float
    errors: int
    non2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        """One printable row."""
        return (
            f"{self.label:<44} {self.rps:>9.0f} req/s  p50 {self.p50_ms:6.3f} ms  "
            f"p90 {self.p90_ms:6.3f} ms  p99 {self.p99_ms:6.3f} ms  "
            f"errors {self.errors} non-2xx {self.non2xx}"
        )


def run_wrk(
    label: str,
    base_url: str,
    paths: list[str],
    *,
    connections: int,
    seconds: int,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    json_body: str | None = None,
) -> LoadResult:
    """Drive GETs over ``paths`` with wrk (a separate process) and parse its figures.

    With ``json_body``, every request is a POST of that JSON instead (etcd's gateway).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "rotate.lua"
        script.write_text(WRK_SCRIPT)
        path_file = Path(tmp) / "paths.txt"
        path_file.write_text("\n".join(paths) + "\n")
        cmd = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
        ]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        cmd += [base_url, "--", str(path_file)]
        if json_body is not None:
            body_file = Path(tmp) / "body.json"
            body_file.write_text(json_body)
            cmd.append(str(body_file))
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    data = json.loads(next(line[8:] for line in out.splitlines() if line.startswith("WRKJSON ")))
    return LoadResult(
        label=label,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"],
        non2xx=data["non2xx"],
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``samples``."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(q * 10) - 1]
