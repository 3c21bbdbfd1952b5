"""The core's built-in components, registered through the same hooks as any plugin."""

from __future__ import annotations

from agentlightning_core.hookspecs import Register, hookimpl

__all__ = [
    "register_adapters",
    "register_algorithms",
    "register_execution_strategies",
    "register_runners",
    "register_stores",
    "register_tracers",
]


@hookimpl
def register_stores(register: Register) -> None:
    register("memory", "agentlightning_core.store.memory:InMemoryLightningStore")
    register("http", "agentlightning_core.remote.client:LightningStoreClient")


@hookimpl
def register_runners(register: Register) -> None:
    register("agent", "agentlightning_core.runner.agent:LitAgentRunner")


@hookimpl
def register_execution_strategies(register: Register) -> None:
    register("shm", "agentlightning_core.execution.shm:SharedMemoryExecutionStrategy")
    register("cs", "agentlightning_core.execution.cs:ClientServerExecutionStrategy")


@hookimpl
def register_algorithms(register: Register) -> None:
    register("fast", "agentlightning_core.algorithm.fast:FastAlgorithm")


@hookimpl
def register_tracers(register: Register) -> None:
    register("otel", "agentlightning_core.tracer.otel:OtelTracer")
    register("noop", "agentlightning_core.tracer.noop:NoOpTracer")


@hookimpl
def register_adapters(register: Register) -> None:
    register("tracer_triplet", "agentlightning_core.adapter.triplet:TracerTraceToTriplet")
    register("proxy_triplet", "agentlightning_core.adapter.triplet:LlmProxyTraceToTriplet")
    register("messages", "agentlightning_core.adapter.messages:TraceToMessages")
