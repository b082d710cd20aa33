"""What a service imports from ``shared`` and ``proto`` needs neither the hub server
(``facade``, ``adapters``) nor the server's web stack, and shadows no stdlib module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Setting sys.modules[name] = None makes any import of ``name`` raise ImportError.
PROBE = """
import sys
blocked_modules = (
    "facade", "adapters", "fastapi", "uvicorn", "starlette", "pydantic", "pydantic_settings",
    "sqlalchemy", "asyncpg", "aiosqlite",  # the optional `db` extra
)
for blocked in blocked_modules:
    sys.modules[blocked] = None
import proto.common.base_pb2, proto.trading.signals_pb2, proto.business.user_management_pb2
import proto.common.tick_data_pb2, proto.ml.predictions_pb2, proto.hub.registry_pb2
import shared.client, shared.error_dna, shared.performance, shared.logs, shared.messages
import shared.config, shared.base_service, shared.patterns
from shared.patterns import StandardResponse
assert StandardResponse("probe", "1").envelope([1])["data"] == [1]
from shared.base_service import BaseService, ServiceConfig
BaseService(ServiceConfig("probe"))
print("ok")
"""


def test_shared_imports_without_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_no_module_shadows_the_standard_library() -> None:
    ours = [p for top in ("shared", "proto", "facade", "adapters") for p in (REPO / top).rglob("*")]
    names = {p.stem for p in ours if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")}
    shadowing = names & set(sys.stdlib_module_names)
    assert not shadowing, f"modules named like the standard library: {sorted(shadowing)}"
