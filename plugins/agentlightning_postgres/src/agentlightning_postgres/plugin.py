"""Plugin entry point: registers the ``postgres`` store (imported lazily on first use)."""

from __future__ import annotations

from agentlightning_core import Register, hookimpl

__all__ = ["register_stores"]


@hookimpl
def register_stores(register: Register) -> None:
    register("postgres", "agentlightning_postgres.store:PostgresLightningStore")
