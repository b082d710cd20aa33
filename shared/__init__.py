"""Central Hub's importable library: what every platform service shares with the hub.

Rules that the hub server and its clients must agree on (error codes, tier order,
tenant header names) live here once; the server imports them, never copies them.

Modules: ``client`` (HubClient, AsyncHubClient), ``base_service`` (BaseService,
ServiceConfig), ``error_dna`` (ErrorDNA), ``performance`` (PerformanceTracker), ``logs``
(structured JSON logging), ``messages`` (MessageEnvelope helpers), ``config`` (templates),
``errors`` and ``tenancy``. See ``shared/README.md``. Nothing here imports the hub
server (``facade``, ``adapters``).
"""
