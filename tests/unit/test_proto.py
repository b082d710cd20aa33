"""The schemas under proto/: generated code is importable, current, and round-trips."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from google.protobuf import runtime_version

from proto.business import subscriptions_pb2, user_management_pb2
from proto.common import base_pb2, tick_data_pb2, user_context_pb2
from proto.hub import registry_pb2
from proto.ml import features_pb2, predictions_pb2
from proto.trading import orders_pb2, signals_pb2
from shared import messages

REPO = Path(__file__).resolve().parents[2]
GEN_SCRIPT = REPO / "scripts" / "gen_proto.py"
TS_DIR = REPO / "proto" / "ts"

# Beyond 2**53: a JavaScript number would round it, forceLong=string keeps it exact.
BIG_INT64 = 9_007_199_254_740_993
GENCODE_LINE = r"^# Protobuf Python Version: (\d+)\.(\d+)\.(\d+)"


def make_batch(n: int = 3) -> tick_data_pb2.BatchTickData:
    return tick_data_pb2.BatchTickData(
        batch_id="batch-42",
        batch_timestamp=1_705_746_600_123,
        source="mt5-bridge",
        user_id="user_123",
        tenant_id="company_abc",
        ticks=[
            tick_data_pb2.TickData(
                symbol="EURUSD",
                bid=1.0851 + i / 10_000,
                ask=1.0853 + i / 10_000,
                volume=100.0 * (i + 1),
                timestamp=1_705_746_600_000 + i,
                source="mt5-bridge",
                spread=0.0002,
            )
            for i in range(n)
        ],
    )


def test_envelope_has_exactly_the_specs_fields() -> None:
    fields = [(f.number, f.name, f.type) for f in base_pb2.MessageEnvelope.DESCRIPTOR.fields]
    fd = base_pb2.MessageEnvelope.DESCRIPTOR.fields[0]
    assert base_pb2.MessageEnvelope.DESCRIPTOR.full_name == "aitrading.common.MessageEnvelope"
    assert fields == [
        (1, "message_type", fd.TYPE_STRING),
        (2, "user_id", fd.TYPE_STRING),
        (3, "payload", fd.TYPE_BYTES),
        (4, "timestamp", fd.TYPE_INT64),
        (5, "service_source", fd.TYPE_STRING),
        (6, "correlation_id", fd.TYPE_STRING),
    ]


def test_envelope_carrying_a_tick_batch_round_trips() -> None:
    batch = make_batch(5)
    envelope = messages.wrap(
        batch, service_source="data-bridge", user_id="user_123", correlation_id="req_456"
    )
    wire = envelope.SerializeToString()

    received = base_pb2.MessageEnvelope.FromString(wire)
    assert received.message_type == "tick_data"
    assert received.service_source == "data-bridge"
    assert received.correlation_id == "req_456"
    assert received.timestamp > 0
    inner = messages.unwrap(received)
    assert isinstance(inner, tick_data_pb2.BatchTickData)
    assert inner == batch
    assert [t.timestamp for t in inner.ticks] == [1_705_746_600_000 + i for i in range(5)]


def test_unwrap_rejects_unknown_message_type() -> None:
    envelope = base_pb2.MessageEnvelope(message_type="no_such_thing", payload=b"\x08\x01")
    with pytest.raises(messages.UnknownMessageType):
        messages.unwrap(envelope)


@pytest.mark.parametrize(
    "message",
    [
        signals_pb2.TradingSignal(
            signal_id="s1",
            symbol="XAUUSD",
            action=signals_pb2.SIGNAL_ACTION_BUY,
            confidence=0.82,
            indicators={"rsi": 28.5, "macd": -0.4},
            generated_at=BIG_INT64,
        ),
        orders_pb2.Order(
            order_id="o1",
            side=orders_pb2.ORDER_SIDE_SELL,
            type=orders_pb2.ORDER_TYPE_LIMIT,
            quantity=0.5,
            price=2031.25,
            time_in_force=orders_pb2.TIME_IN_FORCE_IOC,
            status=orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
        ),
        orders_pb2.ExecutionReport(execution_id="e1", order_id="o1", fill_price=2031.2),
        user_management_pb2.UserEvent(
            event_type=user_management_pb2.UserEvent.EVENT_TYPE_CREATED,
            user=user_management_pb2.User(user_id="u1", roles=["trader"]),
            actor=user_context_pb2.UserContext(
                user_id="admin", subscription_tier=user_context_pb2.SUBSCRIPTION_TIER_PRO
            ),
        ),
        subscriptions_pb2.SubscriptionChanged(
            tenant_id="company_abc",
            previous_tier=user_context_pb2.SUBSCRIPTION_TIER_FREE,
            new_tier=user_context_pb2.SUBSCRIPTION_TIER_ENTERPRISE,
        ),
        features_pb2.FeatureVector(symbol="EURUSD", features={"ema_20": 1.08, "atr": 0.0012}),
        predictions_pb2.Prediction(
            model_name="lstm",
            direction=predictions_pb2.DIRECTION_UP,
            class_probabilities={"up": 0.7, "down": 0.3},
        ),
    ],
    ids=lambda m: m.DESCRIPTOR.name,
)
def test_payload_round_trips_through_an_envelope(message: object) -> None:
    from google.protobuf.message import Message

    assert isinstance(message, Message)
    wire = messages.wrap(message, service_source="test").SerializeToString()
    back = messages.unwrap(base_pb2.MessageEnvelope.FromString(wire))
    assert back == message
    assert type(back) is type(message)


def test_hub_registration_mirrors_the_http_body() -> None:
    reg = registry_pb2.ServiceRegistration(
        name="trading-engine",
        host="127.0.0.1",
        port=8007,
        protocol="http",
        subscription_requirements=["pro", "enterprise"],
        meta={"zone": "a"},
    )
    assert not reg.HasField("ttl")  # unset ttl means "hub default", distinct from 0
    reg.ttl = 0
    assert reg.HasField("ttl")
    back = registry_pb2.ServiceRegistration.FromString(reg.SerializeToString())
    assert back == reg
    assert list(back.subscription_requirements) == ["pro", "enterprise"]


def test_user_context_is_reexported_where_the_spec_imports_it() -> None:
    from proto.business.user_management_pb2 import UserContext

    assert UserContext is user_context_pb2.UserContext


def test_every_bus_message_type_has_a_schema() -> None:
    assert set(messages.MESSAGE_TYPES) >= {"tick_data", "user_event", "trading_signal"}
    for name, cls in messages.MESSAGE_TYPES.items():
        assert messages.message_type_of(cls()) == name


# --- generated code is current and matches the runtime -----------------------------


def _gencode_version() -> tuple[int, int, int]:
    versions = set()
    for path in (REPO / "proto").rglob("*_pb2.py"):
        found = re.search(GENCODE_LINE, path.read_text(), re.M)
        assert found, f"{path} has no gencode version line"
        versions.add(tuple(int(x) for x in found.groups()))
    assert len(versions) == 1, f"mixed gencode versions: {versions}"
    (version,) = versions
    return version  # type: ignore[return-value]


def test_runtime_accepts_the_committed_gencode() -> None:
    gencode = _gencode_version()
    runtime = (runtime_version.MAJOR, runtime_version.MINOR, runtime_version.PATCH)
    assert runtime >= gencode
    # The declared minimum must also be new enough, or a fresh install could pick an
    # older runtime that refuses these modules at import time.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("protobuf")]
    pins += [d for d in project["optional-dependencies"]["client"] if d.startswith("protobuf")]
    assert pins
    for pin in pins:
        found = re.search(r">=\s*(\d+)\.(\d+)(?:\.(\d+))?", pin)
        assert found, pin
        minimum = tuple(int(x or 0) for x in found.groups())
        assert minimum >= gencode, f"{pin} allows a runtime older than gencode {gencode}"


def _compare_trees(committed: Path, fresh: Path, pattern: str) -> None:
    committed_files = {
        p.relative_to(committed) for p in committed.rglob(pattern) if "node_modules" not in p.parts
    }
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob(pattern)}
    assert committed_files == fresh_files, "generated file set differs: run `make proto`"
    stale = [
        str(rel)
        for rel in sorted(fresh_files)
        if not filecmp.cmp(committed / rel, fresh / rel, shallow=False)
    ]
    assert not stale, f"committed generated code is stale, run `make proto`: {stale}"


def test_committed_python_gencode_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--python-only", "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    _compare_trees(REPO / "proto", tmp_path / "proto", "*_pb2.py*")


def _need_npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node/npm not installed: the TypeScript definitions cannot be generated")
    return npm


@pytest.mark.slow
def test_committed_typescript_is_current(tmp_path: Path) -> None:
    _need_npm()
    subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--ts-only", "--out", str(tmp_path)],
        check=True,
        timeout=300,
    )
    _compare_trees(TS_DIR / "proto", tmp_path / "proto" / "ts" / "proto", "*.ts")


@pytest.mark.slow
def test_typescript_encodes_what_python_decodes(tmp_path: Path) -> None:
    """A Node service's envelope (built with the TS definitions) parses in Python."""
    _need_npm()
    # gen_proto installs ts-proto, TypeScript and the runtime from the lock file.
    subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--ts-only", "--out", str(tmp_path / "unused")],
        check=True,
        timeout=300,
    )
    build = tmp_path / "build"
    subprocess.run(
        [
            str(TS_DIR / "node_modules" / ".bin" / "tsc"),
            "--outDir",
            str(build),
            "--module",
            "commonjs",
            "--target",
            "es2020",
            "--strict",
            "--esModuleInterop",
            *[str(p) for p in sorted((TS_DIR / "proto").rglob("*.ts"))],
        ],
        check=True,
        timeout=300,
    )
    script = tmp_path / "encode.js"
    script.write_text(
        """
const { MessageEnvelope } = require(process.argv[2] + "/common/base.js");
const { BatchTickData } = require(process.argv[2] + "/common/tick_data.js");
const batch = BatchTickData.fromPartial({
  batchId: "from-node",
  ticks: [{ symbol: "EURUSD", bid: 1.0851, ask: 1.0853, timestamp: "BIG" }],
});
const env = MessageEnvelope.fromPartial({
  messageType: "tick_data",
  userId: "user_123",
  payload: BatchTickData.encode(batch).finish(),
  timestamp: "BIG",
  serviceSource: "node-gateway",
  correlationId: "req_456",
});
process.stdout.write(Buffer.from(MessageEnvelope.encode(env).finish()).toString("hex"));
""".replace("BIG", str(BIG_INT64))
    )
    node = shutil.which("node")
    assert node is not None
    out = subprocess.run(
        [node, str(script), str(build)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(TS_DIR / "node_modules")},
    ).stdout
    envelope = base_pb2.MessageEnvelope.FromString(bytes.fromhex(out))
    assert envelope.timestamp == BIG_INT64
    assert envelope.service_source == "node-gateway"
    batch = messages.unwrap(envelope)
    assert isinstance(batch, tick_data_pb2.BatchTickData)
    assert batch.batch_id == "from-node"
    assert batch.ticks[0].timestamp == BIG_INT64
    assert batch.ticks[0].bid == pytest.approx(1.0851)
    assert batch.ticks[0].symbol == "EURUSD"


def test_hub_messages_match_the_hub_api_models() -> None:
    """proto/hub/registry.proto mirrors the HTTP bodies: same field names, and a message
    rendered as JSON is a body the hub accepts."""
    from google.protobuf import json_format

    from facade import models

    reg_fields = set(registry_pb2.ServiceRegistration.DESCRIPTOR.fields_by_name)
    assert reg_fields == set(models.ServiceRegistration.model_fields)
    answer_fields = set(registry_pb2.DiscoveryAnswer.DESCRIPTOR.fields_by_name)
    assert answer_fields <= set(models.DiscoveryOut.model_fields)
    result_fields = set(registry_pb2.RegistrationResult.DESCRIPTOR.fields_by_name)
    assert result_fields <= set(models.RegistrationResult.model_fields)
    assert set(registry_pb2.Heartbeat.DESCRIPTOR.fields_by_name) - {"instance_id"} == set(
        models.Heartbeat.model_fields
    )

    reg = registry_pb2.ServiceRegistration(
        name="trading-engine",
        host="10.1.2.3",
        port=8007,
        protocol="http",
        health_endpoint="/health",
        tenant_capable=True,
        subscription_requirements=["pro", "enterprise"],
        resource_tier="premium",
        weight=2,
        version="2.1.0",
        tags=["trading"],
        meta={"zone": "a"},
        ttl=30,
    )
    body = json_format.MessageToDict(reg, preserving_proto_field_name=True)
    parsed = models.ServiceRegistration.model_validate(body)
    assert parsed.subscription_requirements == ["pro", "enterprise"]
    assert parsed.ttl == 30
