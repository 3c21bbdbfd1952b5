"""Entry point of the ``agentlightning`` group: registers the ``langchain`` integration."""

from __future__ import annotations

from agentlightning_core import Register, hookimpl

__all__ = ["register_integrations"]


@hookimpl
def register_integrations(register: Register) -> None:
    register("langchain", "agentlightning_langchain._handler:handler_for")
