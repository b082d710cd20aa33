"""A small order-intake service built on BaseService and HubClient.

Run from the repository root (after ``pip install -e .``), with a token the hub accepts
for the service ``order-intake`` in ``CENTRAL_HUB_TOKEN``::

    export CENTRAL_HUB_TOKEN=$(central-hub token create --role service \\
        --name order-intake --service order-intake \\
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
    python -m examples.trading_service --port 8107 --hub-url http://127.0.0.1:7000

Without a token (or with one the hub refuses) it keeps retrying the registration and
its ``/health`` answers 503 ``unregistered``.

It registers with the hub, heartbeats with its load, follows a tenant's configuration
(``--config-tenant``), validates orders (invalid ones are analysed by ErrorDNA and
answered with its suggested actions), consults ``risk-management`` directly when the
hub can find one, and publishes accepted orders as protobuf ``Order`` messages inside a
``MessageEnvelope``. On SIGTERM it deregisters before it stops accepting requests.
"""

from examples.trading_service.service import TradingService, build_config

__all__ = ["TradingService", "build_config"]
