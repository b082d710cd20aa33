"""The Node.js package (proto/node): current with the schemas, installable from its
folder like a published package, and an envelope round trip Python -> Node -> Python."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proto.common import base_pb2
from proto.trading import orders_pb2
from shared import messages

REPO = Path(__file__).resolve().parents[2]
GEN_SCRIPT = REPO / "scripts" / "gen_proto.py"
NODE_PKG = REPO / "proto" / "node"
BIG_INT64 = 9_007_199_254_740_993  # above 2**53: must survive JavaScript exactly


def _need_node() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: the Node.js package cannot be built or run")
    return node, npm


@pytest.mark.slow
def test_committed_node_package_is_current(tmp_path: Path) -> None:
    _need_node()
    subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--ts-only", "--out", str(tmp_path)],
        check=True,
        timeout=300,
    )
    fresh = tmp_path / "proto" / "node"
    for pattern in ("*.js", "*.d.ts"):
        committed = {
            p.relative_to(NODE_PKG)
            for p in NODE_PKG.rglob(pattern)
            if "node_modules" not in p.parts
        }
        generated = {p.relative_to(fresh) for p in fresh.rglob(pattern)}
        assert committed == generated, "Node package file set differs: run `make proto`"
        stale = [str(r) for r in sorted(generated) if not filecmp.cmp(NODE_PKG / r, fresh / r)]
        assert not stale, f"Node package is stale, run `make proto`: {stale}"


NODE_SCRIPT = r"""
const hub = require("@aitrading/central-hub-proto-node");
const { MessageEnvelope } = hub.common.base;
const { Order, OrderStatus } = hub.trading.orders;
const input = MessageEnvelope.decode(Buffer.from(process.argv[2], "hex"));
const order = Order.decode(input.payload);
// the risk service answers: the same order, filled, in a new envelope on the same request
const filled = Order.fromPartial({ ...order, status: OrderStatus.ORDER_STATUS_FILLED,
  filledQuantity: order.quantity });
const reply = MessageEnvelope.fromPartial({
  messageType: input.messageType,
  userId: input.userId,
  payload: Order.encode(filled).finish(),
  timestamp: input.timestamp,
  serviceSource: "node-risk",
  correlationId: input.correlationId,
});
process.stdout.write(JSON.stringify({
  seen: { orderId: order.orderId, tenantId: order.tenantId, createdAt: order.createdAt,
          source: input.serviceSource, timestamp: input.timestamp },
  reply: Buffer.from(MessageEnvelope.encode(reply).finish()).toString("hex"),
}));
"""


@pytest.mark.slow
def test_envelope_round_trip_between_python_and_an_installed_node_package(
    tmp_path: Path,
) -> None:
    node, npm = _need_node()
    # installed the way a Node service would: from the packed folder (what `npm publish`
    # would upload), into a project of its own, without any TypeScript build
    packed = (
        subprocess.run(
            [npm, "pack", str(NODE_PKG), "--pack-destination", str(tmp_path), "--silent"],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "risk", "version": "1.0.0", "private": true}')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", str(tmp_path / packed)],
        cwd=app,
        check=True,
        timeout=300,
    )
    (app / "main.js").write_text(NODE_SCRIPT)

    order = orders_pb2.Order(
        order_id="ord_42",
        tenant_id="company_abc",
        symbol="EURUSD",
        side=orders_pb2.ORDER_SIDE_BUY,
        quantity=0.5,
        status=orders_pb2.ORDER_STATUS_ACCEPTED,
        created_at=BIG_INT64,
    )
    sent = messages.wrap(
        order, service_source="order-intake", user_id="user_1", correlation_id="req_456"
    )
    sent.timestamp = BIG_INT64
    out = subprocess.run(
        [node, "main.js", sent.SerializeToString().hex()],
        cwd=app,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    answer = json.loads(out)
    assert answer["seen"] == {
        "orderId": "ord_42",
        "tenantId": "company_abc",
        "createdAt": str(BIG_INT64),  # int64 as an exact string in JavaScript
        "source": "order-intake",
        "timestamp": str(BIG_INT64),
    }
    reply = base_pb2.MessageEnvelope.FromString(bytes.fromhex(answer["reply"]))
    assert reply.correlation_id == "req_456"
    assert reply.service_source == "node-risk"
    assert reply.timestamp == BIG_INT64
    filled = messages.unwrap(reply)
    assert isinstance(filled, orders_pb2.Order)
    assert filled.status == orders_pb2.ORDER_STATUS_FILLED
    assert filled.filled_quantity == pytest.approx(0.5)
    assert filled.created_at == BIG_INT64
    assert filled.order_id == "ord_42"
