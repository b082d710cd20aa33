"""State backends for Central Hub: one interface, one module per backend.

Use :func:`create_backend` with a backend name from configuration; concrete classes are
imported lazily so optional client libraries are only needed for the backend in use.
"""

from adapters.base import (
    AuditQuery,
    AuditRecord,
    Backend,
    Capabilities,
    EventType,
    KeyValue,
    Lease,
    LoadReport,
    Put,
    Snapshot,
    WatchEvent,
    catalog_key,
)
from adapters.registry import BACKENDS, backend_class, create_backend

__all__ = [
    "BACKENDS",
    "AuditQuery",
    "AuditRecord",
    "Backend",
    "Capabilities",
    "EventType",
    "KeyValue",
    "Lease",
    "LoadReport",
    "Put",
    "Snapshot",
    "WatchEvent",
    "backend_class",
    "catalog_key",
    "create_backend",
]
