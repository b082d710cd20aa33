"""A small order-intake service built on BaseService and HubClient.

Run from the repository root (after ``pip install -e .``)::

    python -m examples.trading_service --port 8107 --hub-url http://127.0.0.1:7000

It registers with the hub, heartbeats with its load, follows a tenant's configuration
(``--config-tenant``), validates orders (invalid ones are analysed by ErrorDNA and
answered with its suggested actions), consults ``risk-management`` directly when the
hub can find one, and publishes accepted orders as protobuf ``Order`` messages inside a
``MessageEnvelope``. On SIGTERM it deregisters before it stops accepting requests.
"""

from examples.trading_service.service import TradingService, build_config

__all__ = ["TradingService", "build_config"]
