"""Agent Lightning core: train and optimize AI agents without rewriting them.

Public names are imported lazily on first access so ``import agentlightning_core`` stays
cheap; heavy parts (OpenTelemetry SDK, HTTP server and client) load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentlightning_core.hookspecs import hookimpl

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # data types
    "Attempt": "types",
    "AttemptStatus": "types",
    "AttemptedRollout": "types",
    "Rollout": "types",
    "RolloutConfig": "types",
    "RolloutStatus": "types",
    "Triplet": "types",
    "Worker": "types",
    "WorkerStatus": "types",
    "LLM": "resources",
    "NamedResources": "resources",
    "PromptTemplate": "resources",
    "ProxyLLM": "resources",
    "ResourcesUpdate": "resources",
    "Span": "spans",
    "SpanEvent": "spans",
    "SpanLink": "spans",
    "SpanStatus": "spans",
    # errors
    "AgentLightningError": "errors",
    "NotFoundError": "errors",
    "RolloutNotFoundError": "errors",
    "AttemptNotFoundError": "errors",
    "ResourcesNotFoundError": "errors",
    "WorkerNotFoundError": "errors",
    "SpansEvictedError": "errors",
    "StoreUnavailableError": "errors",
    "UnknownComponentError": "errors",
    "DuplicateComponentError": "errors",
    "PluginLoadError": "errors",
    # plugins
    "ComponentSpec": "plugins",
    "Register": "hookspecs",
    "get_plugin_manager": "plugins",
    "resolve_component": "plugins",
    "component_names": "plugins",
    # store
    "LightningStore": "store.base",
    "PaginatedResult": "store.base",
    "EnqueueRequest": "store.base",
    "UNSET": "store.base",
    "InMemoryLightningStore": "store.memory",
    "LightningStoreServer": "remote.server",
    "LightningStoreClient": "remote.client",
    # components
    "Adapter": "adapter.base",
    "TraceAdapter": "adapter.base",
    "Algorithm": "algorithm.base",
    "Tracer": "tracer.base",
    "Runner": "runner.base",
    "ExecutionStrategy": "execution.base",
    # runtime
    "LitAgent": "litagent.base",
    "rollout": "litagent.decorators",
    "llm_rollout": "litagent.decorators",
    "prompt_rollout": "litagent.decorators",
    "LitAgentRunner": "runner.agent",
    "StepResult": "runner.base",
    "FastAlgorithm": "algorithm.fast",
    "algo": "algorithm.decorator",
    "Trainer": "trainer.trainer",
    "Hook": "hooks",
    "SharedMemoryExecutionStrategy": "execution.shm",
    "ClientServerExecutionStrategy": "execution.cs",
    # tracing, emitters, adapters
    "OtelTracer": "tracer.otel",
    "NoOpTracer": "tracer.noop",
    "LightningSpanProcessor": "tracer.processor",
    "emit_reward": "emitter.reward",
    "emit_message": "emitter.events",
    "emit_object": "emitter.events",
    "emit_exception": "emitter.events",
    "emit_annotation": "emitter.events",
    "operation": "emitter.operation",
    "get_reward_value": "emitter.reward",
    "find_reward_spans": "emitter.reward",
    "find_final_reward": "emitter.reward",
    "BadTraceError": "adapter.base",
    "TracerTraceToTriplet": "adapter.triplet",
    "LlmProxyTraceToTriplet": "adapter.triplet",
    "TraceToMessages": "adapter.messages",
    "TraceTree": "adapter.tree",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentlightning_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"agentlightning_core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from agentlightning_core.adapter.base import Adapter, BadTraceError, TraceAdapter
    from agentlightning_core.adapter.messages import TraceToMessages
    from agentlightning_core.adapter.tree import TraceTree
    from agentlightning_core.adapter.triplet import LlmProxyTraceToTriplet, TracerTraceToTriplet
    from agentlightning_core.algorithm.base import Algorithm
    from agentlightning_core.algorithm.decorator import algo
    from agentlightning_core.algorithm.fast import FastAlgorithm
    from agentlightning_core.emitter.events import emit_annotation, emit_exception, emit_message, emit_object
    from agentlightning_core.emitter.operation import operation
    from agentlightning_core.emitter.reward import (
        emit_reward,
        find_final_reward,
        find_reward_spans,
        get_reward_value,
    )
    from agentlightning_core.errors import (
        AgentLightningError,
        AttemptNotFoundError,
        DuplicateComponentError,
        NotFoundError,
        PluginLoadError,
        ResourcesNotFoundError,
        RolloutNotFoundError,
        SpansEvictedError,
        StoreUnavailableError,
        UnknownComponentError,
        WorkerNotFoundError,
    )
    from agentlightning_core.execution.base import ExecutionStrategy
    from agentlightning_core.execution.cs import ClientServerExecutionStrategy
    from agentlightning_core.execution.shm import SharedMemoryExecutionStrategy
    from agentlightning_core.hooks import Hook
    from agentlightning_core.hookspecs import Register
    from agentlightning_core.litagent.base import LitAgent
    from agentlightning_core.litagent.decorators import llm_rollout, prompt_rollout, rollout
    from agentlightning_core.plugins import (
        ComponentSpec,
        component_names,
        get_plugin_manager,
        resolve_component,
    )
    from agentlightning_core.remote.client import LightningStoreClient
    from agentlightning_core.remote.server import LightningStoreServer
    from agentlightning_core.resources import LLM, NamedResources, PromptTemplate, ProxyLLM, ResourcesUpdate
    from agentlightning_core.runner.agent import LitAgentRunner
    from agentlightning_core.runner.base import Runner, StepResult
    from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus
    from agentlightning_core.store.base import UNSET, EnqueueRequest, LightningStore, PaginatedResult
    from agentlightning_core.store.memory import InMemoryLightningStore
    from agentlightning_core.tracer.base import Tracer
    from agentlightning_core.tracer.noop import NoOpTracer
    from agentlightning_core.tracer.otel import OtelTracer
    from agentlightning_core.tracer.processor import LightningSpanProcessor
    from agentlightning_core.trainer.trainer import Trainer
    from agentlightning_core.types import (
        Attempt,
        AttemptedRollout,
        AttemptStatus,
        Rollout,
        RolloutConfig,
        RolloutStatus,
        Triplet,
        Worker,
        WorkerStatus,
    )
