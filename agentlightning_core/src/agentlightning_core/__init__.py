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
    "get_plugin_manager": "plugins",
    "resolve_component": "plugins",
    "component_names": "plugins",
    # store
    "LightningStore": "store.base",
    "PaginatedResult": "store.base",
    "EnqueueRequest": "store.base",
    "UNSET": "store.base",
    "InMemoryLightningStore": "store.memory",
    # components
    "Adapter": "adapter.base",
    "TraceAdapter": "adapter.base",
    "Algorithm": "algorithm.base",
    "Tracer": "tracer.base",
    "Runner": "runner.base",
    "ExecutionStrategy": "execution.base",
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
    from agentlightning_core.adapter.base import Adapter, TraceAdapter
    from agentlightning_core.algorithm.base import Algorithm
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
    from agentlightning_core.plugins import component_names, get_plugin_manager, resolve_component
    from agentlightning_core.resources import LLM, NamedResources, PromptTemplate, ProxyLLM, ResourcesUpdate
    from agentlightning_core.runner.base import Runner
    from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus
    from agentlightning_core.store.base import UNSET, EnqueueRequest, LightningStore, PaginatedResult
    from agentlightning_core.store.memory import InMemoryLightningStore
    from agentlightning_core.tracer.base import Tracer
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
