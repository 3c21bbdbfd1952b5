"""Entry point of the ``agentlightning`` group: registers the ``baseline`` algorithm."""

from __future__ import annotations

from agentlightning_core import Register, hookimpl

__all__ = ["register_algorithms"]


@hookimpl
def register_algorithms(register: Register) -> None:
    register("baseline", "agentlightning_baseline.baseline:Baseline")
