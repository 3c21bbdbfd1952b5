"""``TraceToMessages``: a trace as OpenAI chat conversations (the fine-tuning format)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agentlightning_core.adapter.base import BadDataPolicy, TraceAdapter
from agentlightning_core.adapter.llm_calls import DEFAULT_LLM_CALL_PATTERN, find_llm_calls, usable_llm_calls
from agentlightning_core.spans import Span

__all__ = ["TraceToMessages"]


class TraceToMessages(TraceAdapter[list[dict[str, Any]]]):
    """One ``{"messages": [...prompt, response], "tools": [...]}`` per LLM call, in start order.

    ``tools`` is present when the call offered tools. Calls without prompt or response
    messages (token ids alone are not enough here) are bad data (``on_bad_data``), as is a
    trace without LLM call.
    """

    def __init__(
        self,
        *,
        llm_call_match: str = DEFAULT_LLM_CALL_PATTERN,
        agent_match: str | None = None,
        repair_hierarchy: bool = True,
        on_bad_data: BadDataPolicy = "raise",
    ) -> None:
        super().__init__(on_bad_data=on_bad_data)
        self.llm_call_match = re.compile(llm_call_match)
        self.agent_match = re.compile(agent_match) if agent_match is not None else None
        self.repair_hierarchy = repair_hierarchy

    def adapt(self, source: Sequence[Span]) -> list[dict[str, Any]]:
        self.stats.traces += 1
        where = f"rollout {source[0].rollout_id!r}" if source else "an empty trace"
        calls = find_llm_calls(
            source,
            llm_call_match=self.llm_call_match,
            agent_match=self.agent_match,
            repair_hierarchy=self.repair_hierarchy,
        )
        if not calls:
            self.bad_data("no_llm_call", f"No LLM call matching {self.llm_call_match.pattern!r} in {where}")
            return []
        out: list[dict[str, Any]] = []
        for call in usable_llm_calls(self, calls, where, need_messages=True):
            assert call.prompt_messages is not None and call.response_message is not None  # no defect
            item: dict[str, Any] = {"messages": [*call.prompt_messages, call.response_message]}
            if call.tools:
                item["tools"] = call.tools
            out.append(item)
        self.stats.outputs += len(out)
        return out
