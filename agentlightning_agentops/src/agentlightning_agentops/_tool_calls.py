"""Tool calls of OpenAI responses, recorded where the core's adapters read them.

AgentOps 0.4.21's ``openai`` instrumentor records the tool calls a model returns only as
child spans made through OpenTelemetry's *global* provider (so an isolated provider never
sees them). While an :class:`~agentlightning_agentops.AgentOpsTracer` is initialised, its
helper is replaced by one that writes them on the LLM span in the flattened form
(``gen_ai.completion.0.tool_calls.N.{id,name,arguments}``) and records the ``tool_call.{name}``
child span through the tracer's own provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel_trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["ToolCallPatch"]

_MODULES = (
    "agentops.instrumentation.providers.openai.wrappers.chat",
    "agentops.instrumentation.providers.openai.stream_wrapper",
)
_HELPER = "_create_tool_span"
_PREFIX = "gen_ai.completion.0.tool_calls"


class ToolCallPatch:
    """Replaces AgentOps' tool-call helper for the life of one tracer (``apply``/``restore``)."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("agentlightning_agentops")
        self._originals: dict[str, Any] = {}

    def record(self, parent_span: Any, tool_call: dict[str, Any]) -> None:
        function = tool_call.get("function") or {}
        attributes = getattr(parent_span, "attributes", None) or {}
        index = 0
        while f"{_PREFIX}.{index}.name" in attributes:
            index += 1
        parent_span.set_attribute(f"{_PREFIX}.{index}.id", tool_call.get("id") or "")
        parent_span.set_attribute(f"{_PREFIX}.{index}.name", function.get("name") or "")
        parent_span.set_attribute(f"{_PREFIX}.{index}.arguments", function.get("arguments") or "")
        child = self._tracer.start_span(
            f"tool_call.{function.get('name')}",
            context=otel_trace.set_span_in_context(parent_span),
            attributes={
                "agentops.span.kind": "tool",
                "tool.name": function.get("name") or "",
                "tool.parameters": function.get("arguments") or "",
                "tool.call.id": tool_call.get("id") or "",
                "tool.call.type": tool_call.get("type") or "function",
            },
        )
        child.end()

    def apply(self) -> None:
        import importlib

        for name in _MODULES:
            module = importlib.import_module(name)
            self._originals[name] = getattr(module, _HELPER)
            setattr(module, _HELPER, self.record)

    def restore(self) -> None:
        import sys

        for name, original in self._originals.items():
            setattr(sys.modules[name], _HELPER, original)
        self._originals.clear()
