"""Backend selection by name, with lazy imports and install hints for optional extras."""

from __future__ import annotations

import importlib
from typing import Any

from adapters.base import Backend

# name -> (module, class, pip extra that provides its client library)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "embedded": ("adapters.sqlite", "SQLiteBackend", None),
    "etcd": ("adapters.etcd", "EtcdBackend", "etcd"),
    "consul": ("adapters.consul", "ConsulBackend", "consul"),
}


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name``.

    Raises ValueError for an unknown name and ImportError with an install hint when the
    backend's optional client library is missing.
    """
    try:
        module_name, class_name, extra = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown backend {name!r} (known: {known})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'central-hub[{extra}]'" if extra else "reinstall central-hub"
        raise ImportError(f"backend {name!r} needs an optional dependency: {hint}") from exc
    cls: type[Backend] = getattr(module, class_name)
    return cls


def create_backend(name: str, **options: Any) -> Backend:
    """A new, not yet opened backend of kind ``name`` built from keyword options."""
    return backend_class(name)(**options)
