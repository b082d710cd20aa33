"""Wrapping platform messages in the spec's ``MessageEnvelope`` and back.

An envelope's ``message_type`` names the schema of its ``payload``; this module keeps
the one table from those names to generated classes, so producers and consumers agree
without each writing their own ``if message_type == ...`` chain.
"""

from __future__ import annotations

import time
import uuid

from google.protobuf.message import Message

from proto.business import subscriptions_pb2, user_management_pb2
from proto.common import base_pb2, tick_data_pb2
from proto.ml import features_pb2, predictions_pb2
from proto.trading import orders_pb2, signals_pb2

MessageEnvelope = base_pb2.MessageEnvelope

# message_type -> payload class. Names are the spec's ("tick_data", "user_event",
# "trading_signal") plus one per other top-level message that travels on a bus.
MESSAGE_TYPES: dict[str, type[Message]] = {
    "tick_data": tick_data_pb2.BatchTickData,
    "tick": tick_data_pb2.TickData,
    "user_event": user_management_pb2.UserEvent,
    "trading_signal": signals_pb2.TradingSignal,
    "signal_batch": signals_pb2.SignalBatch,
    "order": orders_pb2.Order,
    "execution_report": orders_pb2.ExecutionReport,
    "subscription_changed": subscriptions_pb2.SubscriptionChanged,
    "feature_vector": features_pb2.FeatureVector,
    "feature_batch": features_pb2.FeatureBatch,
    "prediction": predictions_pb2.Prediction,
}
_TYPE_BY_CLASS = {cls.DESCRIPTOR.full_name: name for name, cls in MESSAGE_TYPES.items()}


class UnknownMessageType(ValueError):
    """An envelope names a ``message_type`` this library has no schema for."""


def message_type_of(message: Message) -> str:
    """The envelope ``message_type`` for a payload message."""
    name = _TYPE_BY_CLASS.get(message.DESCRIPTOR.full_name)
    if name is None:
        raise UnknownMessageType(f"no message_type for {message.DESCRIPTOR.full_name}")
    return name


def wrap(
    message: Message,
    *,
    service_source: str,
    user_id: str = "",
    correlation_id: str | None = None,
    timestamp_ms: int | None = None,
) -> base_pb2.MessageEnvelope:
    """Serialize ``message`` into a new envelope.

    ``timestamp_ms`` defaults to now (Unix ms); ``correlation_id`` to a fresh UUID so a
    message always carries something to trace by.
    """
    return base_pb2.MessageEnvelope(
        message_type=message_type_of(message),
        user_id=user_id,
        payload=message.SerializeToString(),
        timestamp=timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000,
        service_source=service_source,
        correlation_id=correlation_id or uuid.uuid4().hex,
    )


def unwrap(envelope: base_pb2.MessageEnvelope) -> Message:
    """Parse an envelope's payload with the schema its ``message_type`` names."""
    cls = MESSAGE_TYPES.get(envelope.message_type)
    if cls is None:
        raise UnknownMessageType(f"unknown message_type {envelope.message_type!r}")
    payload = cls()
    payload.ParseFromString(envelope.payload)
    return payload
