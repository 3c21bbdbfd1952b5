"""A span processor tagging spans started inside a LangChain run with that run.

Spans other instrumentations start while a LangChain runnable runs (an ``emit_reward`` in a
LangGraph node, the ``openai`` capture of a ``ChatOpenAI`` call) get the run's id as
``agentlightning.langchain.parent_run_id``, the LangGraph node as their agent name and the
graph's ``thread_id`` as their conversation id: per-node credit and the link between the
handler's record of an LLM call and the lower-level one are explicit.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables.config import var_child_runnable_config
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agentlightning_core import semconv

__all__ = ["PARENT_RUN_ID", "RUN_ID", "RunContextProcessor"]

RUN_ID = "agentlightning.langchain.run_id"
"""The LangChain run a span records (spans of the callback handler)."""
PARENT_RUN_ID = "agentlightning.langchain.parent_run_id"
"""The LangChain run a span was recorded in: its parent run, or for a span another
instrumentation started inside a run (an emitted reward), that run (e.g. the LangGraph node)."""


class RunContextProcessor(SpanProcessor):
    """Adds the enclosing LangChain run (if any) to each span as it starts (~0.1 µs otherwise)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        config = var_child_runnable_config.get()
        if not config:
            return
        attrs = span.attributes or {}
        if RUN_ID in attrs:
            return  # the handler's own span: it sets these itself
        run_id = getattr(config.get("callbacks"), "parent_run_id", None)
        if run_id is not None and PARENT_RUN_ID not in attrs:
            span.set_attribute(PARENT_RUN_ID, str(run_id))
        metadata: dict[str, Any] = config.get("metadata") or {}
        node = metadata.get("langgraph_node")
        if isinstance(node, str) and node and semconv.AGENT_NAME not in attrs:
            span.set_attribute(semconv.AGENT_NAME, node)
        thread = (config.get("configurable") or {}).get("thread_id", metadata.get("thread_id"))
        if thread is not None and semconv.GEN_AI_CONVERSATION_ID not in attrs:
            span.set_attribute(semconv.GEN_AI_CONVERSATION_ID, str(thread))

    def on_end(self, span: ReadableSpan) -> None:
        return None
