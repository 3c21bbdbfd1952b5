"""Plugin entry point: registers the ``sqlite`` store (imported lazily on first use)."""

from __future__ import annotations

from agentlightning_core import hookimpl
from agentlightning_core.hookspecs import Register

__all__ = ["register_stores"]


@hookimpl
def register_stores(register: Register) -> None:
    register("sqlite", "agentlightning_sqlite.store:SqliteLightningStore")
