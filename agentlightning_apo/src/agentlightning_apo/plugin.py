"""Entry point of the ``agentlightning`` group: registers the ``apo`` algorithm."""

from __future__ import annotations

from agentlightning_core import Register, hookimpl

__all__ = ["register_algorithms"]


@hookimpl
def register_algorithms(register: Register) -> None:
    register("apo", "agentlightning_apo.apo:APO")
