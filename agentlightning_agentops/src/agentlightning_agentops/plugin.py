"""Plugin entry point: registers the ``agentops`` tracer (agentops is imported at ``init``)."""

from __future__ import annotations

from agentlightning_core import Register, hookimpl

__all__ = ["register_tracers"]


@hookimpl
def register_tracers(register: Register) -> None:
    register("agentops", "agentlightning_agentops.tracer:AgentOpsTracer")
