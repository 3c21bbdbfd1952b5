"""Finding LLM calls in a trace and reading their prompt, response and token ids."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from agentlightning_core import semconv
from agentlightning_core.adapter._flat import COMPLETION_PREFIX, PROMPT_PREFIX, flat_messages, flat_tools
from agentlightning_core.adapter.tree import TraceNode, TraceTree
from agentlightning_core.spans import Span
from agentlightning_core.tracer.genai import from_semconv_messages, loads_messages

if TYPE_CHECKING:
    from agentlightning_core.adapter.base import TraceAdapter

__all__ = ["DEFAULT_LLM_CALL_PATTERN", "LlmCall", "agent_name_of", "find_llm_calls", "usable_llm_calls"]

DEFAULT_LLM_CALL_PATTERN = r"^chat(\s|$)|^openai\.chat"
"""Span names of LLM calls: ``chat {model}`` (GenAI conventions) and ``openai.chat*``."""


def agent_name_of(attributes: dict[str, Any]) -> str | None:
    for key in semconv.AGENT_NAME_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and set(map(type, value)) <= {int}:  # C-speed check of every element
        return list(value)
    return None


@attrs.define
class LlmCall:
    """One LLM call read from its span; messages are in OpenAI chat format."""

    span: Span
    agent_name: str | None
    prompt_messages: list[dict[str, Any]] | None
    response_message: dict[str, Any] | None
    tools: list[Any] | None
    prompt_token_ids: list[int] | None
    response_token_ids: list[int] | None

    @classmethod
    def from_span(cls, span: Span, agent_name: str | None = None) -> LlmCall:
        """Read the call from ``gen_ai.input.messages``/``gen_ai.output.messages`` JSON (our
        tracer, the GenAI conventions) or, failing those, from the flattened
        ``gen_ai.prompt.N.*``/``gen_ai.completion.N.*`` attributes of OpenLLMetry and AgentOps."""
        attrs_ = span.attributes
        prompt = loads_messages(attrs_.get(semconv.GEN_AI_INPUT_MESSAGES))
        outputs = loads_messages(attrs_.get(semconv.GEN_AI_OUTPUT_MESSAGES))
        prompt_messages = from_semconv_messages(prompt) if prompt else flat_messages(attrs_, PROMPT_PREFIX)
        if outputs:
            response: dict[str, Any] | None = from_semconv_messages(outputs[:1])[0]
        else:
            completions = flat_messages(attrs_, COMPLETION_PREFIX)
            response = completions[0] if completions else None
        tools_raw = attrs_.get(semconv.GEN_AI_TOOL_DEFINITIONS)
        tools: list[Any] | None = None
        if isinstance(tools_raw, str):
            try:
                decoded = json.loads(tools_raw)
            except ValueError:
                decoded = None
            tools = decoded if isinstance(decoded, list) else None
        if tools is None:
            tools = flat_tools(attrs_)
        return cls(
            span=span,
            agent_name=agent_name if agent_name is not None else agent_name_of(attrs_),
            prompt_messages=prompt_messages or None,
            response_message=response,
            tools=tools,
            prompt_token_ids=_int_list(attrs_.get(semconv.LLM_PROMPT_TOKEN_IDS)),
            response_token_ids=_int_list(attrs_.get(semconv.LLM_RESPONSE_TOKEN_IDS)),
        )

    @property
    def failed(self) -> bool:
        return self.span.status.status_code == "ERROR"

    def defect(self, *, need_messages: bool = False) -> str | None:
        """Why this call cannot be learning data (a bad-data reason), None when it can.

        ``llm_call_failed`` (error status), ``llm_call_without_prompt`` or
        ``llm_call_without_response``. Token ids alone count as a prompt or response unless
        ``need_messages`` (for outputs in chat format).
        """
        if self.failed:
            return "llm_call_failed"
        if not self.prompt_messages and (need_messages or not self.prompt_token_ids):
            return "llm_call_without_prompt"
        if self.response_message is None and (need_messages or not self.response_token_ids):
            return "llm_call_without_response"
        return None

    def metadata(self) -> dict[str, Any]:
        a = self.span.attributes
        return {
            "span_id": self.span.span_id,
            "sequence_id": self.span.sequence_id,
            "rollout_id": self.span.rollout_id,
            "attempt_id": self.span.attempt_id,
            "agent_name": self.agent_name,
            "model": a.get(semconv.GEN_AI_RESPONSE_MODEL, a.get(semconv.GEN_AI_REQUEST_MODEL)),
            "response_id": a.get(semconv.GEN_AI_RESPONSE_ID),
            "input_tokens": a.get(semconv.GEN_AI_USAGE_INPUT_TOKENS),
            "output_tokens": a.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        }


_DEFECT_TEXT = {
    "llm_call_failed": "failed",
    "llm_call_without_prompt": "has no prompt",
    "llm_call_without_response": "has no response",
}


def usable_llm_calls(
    adapter: TraceAdapter[Any], calls: Sequence[LlmCall], where: str, *, need_messages: bool = False
) -> list[LlmCall]:
    """The calls without :meth:`LlmCall.defect`; a failed call is skipped (counted), other
    defects are bad data under ``adapter.on_bad_data``."""
    usable: list[LlmCall] = []
    for call in calls:
        reason = call.defect(need_messages=need_messages)
        if reason is None:
            usable.append(call)
            continue
        message = f"LLM call span {call.span.span_id} in {where} {_DEFECT_TEXT[reason]}"
        if reason == "llm_call_failed":
            adapter.skip(reason, message)
        else:
            adapter.bad_data(reason, message)
    return usable


def _one_call(records: list[LlmCall]) -> LlmCall:
    """One LLM call recorded several times (a framework's callback, the ``openai`` capture,
    the LLM proxy): the record with token ids (the lowest level) else the first; the agent
    name of the first record naming one on its own span (the framework knows the agent);
    messages and tools the kept record lacks come from the others."""
    if len(records) == 1:
        return records[0]
    kept = max(records, key=lambda c: (c.response_token_ids is not None, c.prompt_token_ids is not None))
    named = [c.agent_name for c in records if agent_name_of(c.span.attributes)]
    return attrs.evolve(
        kept,
        agent_name=named[0] if named else kept.agent_name,
        prompt_messages=kept.prompt_messages
        or next((c.prompt_messages for c in records if c.prompt_messages), None),
        response_message=kept.response_message
        or next((c.response_message for c in records if c.response_message), None),
        tools=kept.tools or next((c.tools for c in records if c.tools), None),
    )


def find_llm_calls(
    spans: Sequence[Span],
    *,
    llm_call_match: re.Pattern[str],
    agent_match: re.Pattern[str] | None = None,
    repair_hierarchy: bool = True,
) -> list[LlmCall]:
    """LLM calls of a trace in start order: spans whose name matches ``llm_call_match`` and,
    with ``agent_match``, whose agent name (on the span or an ancestor) matches.

    A call recorded twice is counted once: an LLM span nested in another, or two LLM spans
    with the same ``gen_ai.response.id`` (a LangChain callback and the ``openai`` capture or
    the LLM proxy), are one call, read as :func:`_one_call` merges them."""
    tree = TraceTree.from_spans(spans, repair_hierarchy=repair_hierarchy)
    groups: list[list[LlmCall]] = []
    by_response_id: dict[str, list[LlmCall]] = {}
    stack: list[tuple[TraceNode, str | None, list[LlmCall] | None]] = [(tree.root, None, None)]
    while stack:
        node, agent, group = stack.pop()
        if node.span is not None:
            agent = agent_name_of(node.span.attributes) or agent
            if llm_call_match.search(node.name):
                call = LlmCall.from_span(node.span, agent)
                response_id = node.span.attributes.get(semconv.GEN_AI_RESPONSE_ID)
                if not isinstance(response_id, str) or not response_id:
                    response_id = None
                if group is None and response_id is not None:
                    group = by_response_id.get(response_id)
                if group is None:
                    group = []
                    groups.append(group)
                group.append(call)
                if response_id is not None:
                    by_response_id.setdefault(response_id, group)
        stack.extend((child, agent, group) for child in node.children)
    found = [_one_call(group) for group in groups]
    if agent_match is not None:
        found = [c for c in found if c.agent_name is not None and agent_match.search(c.agent_name)]
    found.sort(
        key=lambda c: (c.span.start_time if c.span.start_time is not None else 0.0, c.span.sequence_id)
    )
    return found
