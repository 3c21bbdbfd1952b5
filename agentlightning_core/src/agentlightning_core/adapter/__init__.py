"""Adapter components: turn the spans of a rollout into learning data."""

from agentlightning_core.adapter.base import Adapter, AdapterStats, BadDataPolicy, BadTraceError, TraceAdapter

__all__ = ["Adapter", "AdapterStats", "BadDataPolicy", "BadTraceError", "TraceAdapter"]
