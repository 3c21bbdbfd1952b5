"""The core's built-in components, registered through the same hooks as any plugin."""

from __future__ import annotations

from agentlightning_core.hookspecs import Register, hookimpl

__all__ = ["register_stores"]


@hookimpl
def register_stores(register: Register) -> None:
    register("memory", "agentlightning_core.store.memory:InMemoryLightningStore")
