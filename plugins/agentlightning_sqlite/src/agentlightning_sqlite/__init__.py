"""Agent Lightning's SQLite store: durable, shared by processes on one machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["SqliteLightningStore", "SqliteStoreError", "__version__"]

if TYPE_CHECKING:
    from agentlightning_sqlite.errors import SqliteStoreError
    from agentlightning_sqlite.store import SqliteLightningStore


def __getattr__(name: str) -> Any:
    # Lazy, so loading the plugin (entry point) does not import sqlite3 and the store.
    if name == "SqliteLightningStore":
        from agentlightning_sqlite.store import SqliteLightningStore

        return SqliteLightningStore
    if name == "SqliteStoreError":
        from agentlightning_sqlite.errors import SqliteStoreError

        return SqliteStoreError
    raise AttributeError(f"module 'agentlightning_sqlite' has no attribute {name!r}")
