"""Entry point of the ``agentlightning`` group: registers the ``ray`` execution strategy."""

from __future__ import annotations

from agentlightning_core import Register, hookimpl

__all__ = ["register_execution_strategies"]


@hookimpl
def register_execution_strategies(register: Register) -> None:
    register("ray", "agentlightning_ray.strategy:RayExecutionStrategy")
