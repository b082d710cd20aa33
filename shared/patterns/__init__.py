"""Patterns every platform service shares: the response envelope and tenant-isolated
database access (the spec's ``from utils.patterns import StandardResponse,
StandardDatabaseManager``).

``StandardResponse`` needs only Starlette/FastAPI when its integration is used.
``StandardDatabaseManager`` needs the ``db`` extra (SQLAlchemy, asyncpg, aiosqlite) and
is imported on first use, so ``import shared.patterns`` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.patterns.response import ResponseMeta, StandardResponse

if TYPE_CHECKING:
    from shared.patterns.database import (
        DatabaseSettings,
        StandardDatabaseManager,
        TenantScoped,
    )

__all__ = [
    "DatabaseSettings",
    "ResponseMeta",
    "StandardDatabaseManager",
    "StandardResponse",
    "TenantScoped",
]


def __getattr__(name: str) -> Any:
    """Import the database layer lazily: it needs the optional ``db`` extra."""
    if name in {"DatabaseSettings", "StandardDatabaseManager", "TenantScoped"}:
        from shared.patterns import database

        return getattr(database, name)
    raise AttributeError(name)
