"""Agent Lightning's PostgreSQL store: one database shared by store servers and runners on many machines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["PostgresLightningStore", "PostgresStoreError", "__version__"]

if TYPE_CHECKING:
    from agentlightning_postgres.errors import PostgresStoreError
    from agentlightning_postgres.store import PostgresLightningStore


def __getattr__(name: str) -> Any:
    # Lazy, so loading the plugin (entry point) does not import psycopg and the store.
    if name == "PostgresLightningStore":
        from agentlightning_postgres.store import PostgresLightningStore

        return PostgresLightningStore
    if name == "PostgresStoreError":
        from agentlightning_postgres.errors import PostgresStoreError

        return PostgresStoreError
    raise AttributeError(f"module 'agentlightning_postgres' has no attribute {name!r}")
