"""LangChain callback handlers that record runs as spans of the current Agent Lightning trace.

Each run (chat model, LLM, chain, tool, retriever) becomes a span, child of its parent run's
span (``parent_run_id``), the outermost one a child of the span current when it started (the
trace's root inside a runner). Model runs are ``chat {model}`` spans with the GenAI
semantic-convention attributes the core adapters read; the LangGraph node a run belongs to
is its agent name (``gen_ai.agent.name``) and the graph's ``thread_id`` its conversation id.
Runs outside any trace context are not recorded.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import BaseMessage, convert_to_openai_messages
from opentelemetry import trace as otel_trace

from agentlightning_core import Tracer, semconv
from agentlightning_core.tracer.base import active_tracer
from agentlightning_core.tracer.genai import to_semconv_message, to_semconv_messages
from agentlightning_langchain._context import PARENT_RUN_ID, RUN_ID, RunContextProcessor

if TYPE_CHECKING:
    from langchain_core.agents import AgentAction, AgentFinish
    from langchain_core.documents import Document
    from langchain_core.outputs import LLMResult
    from tenacity import RetryCallState

__all__ = [
    "PARENT_RUN_ID",
    "RUN_ID",
    "RUN_TYPE",
    "AsyncLightningCallbackHandler",
    "LightningCallbackHandler",
    "handler_for",
    "tag_spans_with_runs",
]

logger = logging.getLogger(__name__)

RUN_TYPE = "agentlightning.langchain.run_type"
"""``chat_model``, ``llm``, ``chain``, ``tool`` or ``retriever``."""
TAGS = "agentlightning.langchain.tags"
STREAM_EVENTS = "agentlightning.langchain.stream_events"

_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "ParentCommand"})
"""LangGraph exceptions that steer the graph (interrupts, commands): not errors."""

_processors: weakref.WeakKeyDictionary[Any, RunContextProcessor] = weakref.WeakKeyDictionary()
_processors_lock = threading.Lock()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return convert_to_openai_messages(value)
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else str(value)


def _openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    converted = convert_to_openai_messages(list(messages))
    return converted if isinstance(converted, list) else [converted]


def tag_spans_with_runs(tracer: Tracer | None) -> None:
    """Add a :class:`RunContextProcessor` to the tracer's OpenTelemetry provider (once)."""
    provider = getattr(tracer, "provider", None)
    if provider is None or not hasattr(provider, "add_span_processor") or provider in _processors:
        return
    with _processors_lock:
        if provider not in _processors:
            _processors[provider] = processor = RunContextProcessor()
            provider.add_span_processor(processor)


class _Run:
    __slots__ = ("span", "tokens")

    def __init__(self, span: otel_trace.Span) -> None:
        self.span = span
        self.tokens = 0


class LightningCallbackHandler(BaseCallbackHandler):
    """Records every LangChain callback event into the current trace (sync and async runs).

    :param tracer: the tracer whose traces receive the spans; by default the tracer whose
        trace context encloses each run (:func:`~agentlightning_core.tracer.base.active_tracer`).
        An ``OtelTracer`` is needed (one with an ``otel_tracer``); with another tracer runs are
        not recorded.
    """

    run_inline = True  # called in the caller's context: cheap, ordered, no executor hop
    raise_error = False

    def __init__(self, tracer: Tracer | None = None) -> None:
        self.tracer = tracer
        if tracer is not None:
            tag_spans_with_runs(tracer)
        self._runs: dict[UUID, _Run] = {}
        self._lock = threading.Lock()

    # --- spans -----------------------------------------------------------------------------

    def _otel(self) -> otel_trace.Tracer | None:
        tracer = self.tracer if self.tracer is not None else active_tracer()
        otel = getattr(tracer, "otel_tracer", None)
        if not isinstance(otel, otel_trace.Tracer):
            return None
        tag_spans_with_runs(tracer)
        return otel

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        run_type: str,
        attributes: dict[str, Any],
        metadata: Mapping[str, Any] | None,
        tags: Sequence[str] | None,
        kind: otel_trace.SpanKind = otel_trace.SpanKind.INTERNAL,
    ) -> None:
        otel = self._otel()
        if otel is None:
            return
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        if parent is not None:
            context = otel_trace.set_span_in_context(parent.span)
        elif otel_trace.get_current_span().get_span_context().is_valid:
            context = None  # the current span (the trace's root, or the agent's own span)
        else:
            return  # outside any trace: nothing would store the span
        attributes[RUN_ID] = str(run_id)
        attributes[RUN_TYPE] = run_type
        if parent_run_id is not None:
            attributes[PARENT_RUN_ID] = str(parent_run_id)
        if tags:
            attributes[TAGS] = [str(t) for t in tags]
        if metadata:
            node = metadata.get("langgraph_node")
            if isinstance(node, str) and node:
                attributes[semconv.AGENT_NAME] = node
            thread = metadata.get("thread_id")
            if isinstance(thread, (str, int)) and not isinstance(thread, bool):
                attributes[semconv.GEN_AI_CONVERSATION_ID] = str(thread)
        span = otel.start_span(name, context=context, kind=kind, attributes=attributes)
        with self._lock:
            self._runs[run_id] = _Run(span)

    def _get(self, run_id: UUID) -> _Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def _end(
        self, run_id: UUID, attributes: Mapping[str, Any] | None = None, error: BaseException | None = None
    ) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return
        span = run.span
        if attributes:
            span.set_attributes(attributes)
        if run.tokens:
            span.set_attribute(semconv.LLM_STREAM, True)
        if error is not None:
            if {c.__name__ for c in type(error).__mro__} & _CONTROL_FLOW:
                span.add_event("langgraph.control_flow", {"exception.type": type(error).__name__})
            else:
                span.record_exception(error)
                span.set_status(
                    otel_trace.Status(otel_trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
                )
        span.end()

    def _event(self, run_id: UUID, name: str, attributes: Mapping[str, Any]) -> None:
        run = self._get(run_id)
        if run is not None:
            run.span.add_event(name, dict(attributes))

    # --- model runs --------------------------------------------------------------------------

    @staticmethod
    def _model_attributes(
        operation: str,
        serialized: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        params = kwargs.get("invocation_params") or {}
        meta = metadata or {}
        model = params.get("model") or params.get("model_name") or meta.get("ls_model_name")
        attrs: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: operation,
            semconv.GEN_AI_PROVIDER_NAME: str(
                meta.get("ls_provider") or (serialized or {}).get("name") or "langchain"
            ),
            semconv.LLM_STREAM: params.get("stream") is True,
        }
        if isinstance(model, str):
            attrs[semconv.GEN_AI_REQUEST_MODEL] = model
        for key, attr in (
            ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
            ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
            ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
        ):
            value = params.get(key, meta.get(f"ls_{key}"))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[attr] = value
        tools = params.get("tools")
        if isinstance(tools, list) and tools:
            attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = _json(tools)
        name = f"{operation} {model}" if isinstance(model, str) else operation
        return name, attrs

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name, attrs = self._model_attributes("chat", serialized, metadata, kwargs)
        try:
            attrs[semconv.GEN_AI_INPUT_MESSAGES] = _json(to_semconv_messages(_openai_messages(messages[0])))
        except (TypeError, ValueError, IndexError) as exc:
            logger.warning("Could not record the messages of a LangChain chat model run: %s", exc)
        self._start(
            run_id, parent_run_id, name, "chat_model", attrs, metadata, tags, otel_trace.SpanKind.CLIENT
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name, attrs = self._model_attributes("text_completion", serialized, metadata, kwargs)
        prompt = [{"role": "user", "content": p} for p in prompts[:1]]
        attrs[semconv.GEN_AI_INPUT_MESSAGES] = _json(to_semconv_messages(prompt))
        self._start(run_id, parent_run_id, name, "llm", attrs, metadata, tags, otel_trace.SpanKind.CLIENT)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._get(run_id)
        if run is not None:
            run.tokens += 1

    def on_stream_event(self, event: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._get(run_id)
        if run is not None:
            run.tokens += 1
            run.span.set_attribute(STREAM_EVENTS, run.tokens)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            attrs = _result_attributes(response)
        except Exception:  # recording must never break the agent
            logger.exception("Could not record the response of a LangChain model run")
            attrs = {}
        self._end(run_id, attrs)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error=error)

    # --- chains, tools, retrievers -------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "chain"
        attrs = {semconv.OPERATION_NAME: str(name), semconv.OPERATION_INPUT: _json(inputs)}
        self._start(run_id, parent_run_id, str(name), "chain", attrs, metadata, tags)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, {semconv.OPERATION_OUTPUT: _json(outputs)})

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error=error)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        attrs: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: "execute_tool",
            "gen_ai.tool.name": name,
            semconv.OPERATION_INPUT: _json(inputs) if inputs is not None else input_str,
        }
        call_id = kwargs.get("tool_call_id")
        if isinstance(call_id, str):
            attrs["gen_ai.tool.call.id"] = call_id
        self._start(run_id, parent_run_id, f"execute_tool {name}", "tool", attrs, metadata, tags)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        content = getattr(output, "content", output)  # a ToolMessage: its content
        self._end(run_id, {semconv.OPERATION_OUTPUT: content if isinstance(content, str) else _json(content)})

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error=error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "retriever")
        attrs = {semconv.OPERATION_NAME: name, semconv.OPERATION_INPUT: query}
        self._start(run_id, parent_run_id, f"retrieve {name}", "retriever", attrs, metadata, tags)

    def on_retriever_end(self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any) -> None:
        docs = [{"page_content": d.page_content, "metadata": d.metadata} for d in documents]
        self._end(run_id, {semconv.OPERATION_OUTPUT: _json(docs)})

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error=error)

    # --- events on a run ---------------------------------------------------------------------

    def on_agent_action(self, action: AgentAction, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(
            run_id,
            "agent_action",
            {"tool": action.tool, "tool_input": _json(action.tool_input), "log": action.log},
        )

    def on_agent_finish(self, finish: AgentFinish, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(run_id, "agent_finish", {"return_values": _json(finish.return_values), "log": finish.log})

    def on_retry(self, retry_state: RetryCallState, *, run_id: UUID, **kwargs: Any) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        attrs: dict[str, Any] = {"attempt": retry_state.attempt_number}
        if error is not None:
            attrs["exception.type"] = type(error).__name__
            attrs["exception.message"] = str(error)
        self._event(run_id, "retry", attrs)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(run_id, f"custom.{name}", {"data": _json(data)})

    def on_text(self, text: str, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(run_id, "text", {"text": text})


def _result_attributes(response: LLMResult) -> dict[str, Any]:
    """The GenAI response attributes of a model run's first generation."""
    generation = response.generations[0][0] if response.generations and response.generations[0] else None
    if generation is None:
        return {}
    info = generation.generation_info or {}
    message = getattr(generation, "message", None)
    llm_output = response.llm_output or {}
    meta: Mapping[str, Any] = getattr(message, "response_metadata", None) or {}
    reason = info.get("finish_reason") or meta.get("finish_reason") or meta.get("stop_reason")
    if message is not None:
        (out,) = _openai_messages([message])
        if out.get("tool_calls") and not out.get("content"):
            out["content"] = None  # a tool-calling turn without text, as the openai client reports it
    else:
        out = {"role": "assistant", "content": generation.text}
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OUTPUT_MESSAGES: _json([to_semconv_message(out, finish_reason=reason or None)])
    }
    if isinstance(reason, str):
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
    response_id = meta.get("id") or llm_output.get("id") or getattr(message, "id", None)
    if isinstance(response_id, str) and not response_id.startswith(("run-", "lc_run-")):
        attrs[semconv.GEN_AI_RESPONSE_ID] = response_id
    model = meta.get("model_name") or meta.get("model") or llm_output.get("model_name")
    if isinstance(model, str):
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = model
    usage = getattr(message, "usage_metadata", None) or {}
    token_usage = llm_output.get("token_usage") or {}
    for key, legacy, attr in (
        ("input_tokens", "prompt_tokens", semconv.GEN_AI_USAGE_INPUT_TOKENS),
        ("output_tokens", "completion_tokens", semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
    ):
        value = usage.get(key, token_usage.get(legacy))
        if isinstance(value, int):
            attrs[attr] = value
    return attrs


class AsyncLightningCallbackHandler(AsyncCallbackHandler):
    """The async twin of :class:`LightningCallbackHandler` (same spans; LangChain also runs the
    sync one in async code)."""

    run_inline = True
    raise_error = False

    def __init__(self, tracer: Tracer | None = None) -> None:
        self.sync = LightningCallbackHandler(tracer)

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.sync.on_chat_model_start(serialized, messages, **kwargs)

    async def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self.sync.on_llm_start(serialized, prompts, **kwargs)

    async def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.sync.on_llm_new_token(token, **kwargs)

    async def on_stream_event(self, event: Any, **kwargs: Any) -> None:
        self.sync.on_stream_event(event, **kwargs)

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.sync.on_llm_end(response, **kwargs)

    async def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.sync.on_llm_error(error, **kwargs)

    async def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, **kwargs: Any) -> None:
        self.sync.on_chain_start(serialized, inputs, **kwargs)

    async def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        self.sync.on_chain_end(outputs, **kwargs)

    async def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        self.sync.on_chain_error(error, **kwargs)

    async def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, **kwargs: Any) -> None:
        self.sync.on_tool_start(serialized, input_str, **kwargs)

    async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.sync.on_tool_end(output, **kwargs)

    async def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        self.sync.on_tool_error(error, **kwargs)

    async def on_retriever_start(self, serialized: dict[str, Any] | None, query: str, **kwargs: Any) -> None:
        self.sync.on_retriever_start(serialized, query, **kwargs)

    async def on_retriever_end(self, documents: Sequence[Document], **kwargs: Any) -> None:
        self.sync.on_retriever_end(documents, **kwargs)

    async def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        self.sync.on_retriever_error(error, **kwargs)

    async def on_agent_action(self, action: AgentAction, **kwargs: Any) -> None:
        self.sync.on_agent_action(action, **kwargs)

    async def on_agent_finish(self, finish: AgentFinish, **kwargs: Any) -> None:
        self.sync.on_agent_finish(finish, **kwargs)

    async def on_retry(self, retry_state: RetryCallState, **kwargs: Any) -> None:
        self.sync.on_retry(retry_state, **kwargs)

    async def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.sync.on_custom_event(name, data, **kwargs)

    async def on_text(self, text: str, **kwargs: Any) -> None:
        self.sync.on_text(text, **kwargs)


def handler_for(tracer: Tracer) -> LightningCallbackHandler:
    """The ``langchain`` integration: what ``tracer.get_langchain_handler()`` returns."""
    return LightningCallbackHandler(tracer)
