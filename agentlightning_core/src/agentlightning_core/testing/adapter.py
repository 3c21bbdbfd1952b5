"""Conformance suite for trace adapters, plus builders of realistic spans.

Subclass :class:`TraceAdapterConformance` under a name pytest collects and provide the
fixture ``adapter_factory``: a callable taking ``on_bad_data=`` and returning a new adapter::

    class TestMyAdapter(TraceAdapterConformance):
        @pytest.fixture
        def adapter_factory(self):
            return lambda **options: MyAdapter(**options)

The suite feeds :func:`sample_trace` (an agent span, two LLM calls with tool use, a reward)
and an empty trace, and checks the no-silent-bad-data contract. Don't override its tests
except to mark one ``xfail`` with a reason.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from agentlightning_core import semconv
from agentlightning_core.adapter.base import BadTraceError, TraceAdapter
from agentlightning_core.spans import Span, SpanStatus
from agentlightning_core.testing.conformance import ConformanceSuite
from agentlightning_core.tracer.genai import to_semconv_message, to_semconv_messages

__all__ = [
    "TraceAdapterConformance",
    "llm_span",
    "reward_span",
    "sample_trace",
    "span",
]

ROLLOUT = "ro-sample"
ATTEMPT = "at-sample"
TRACE = "0" * 31 + "a"
T0 = 1_700_000_000.0


def span(
    index: int,
    name: str,
    *,
    parent: int | None = None,
    start: float = 0.0,
    end: float = 1.0,
    sequence_id: int | None = None,
    attributes: dict[str, Any] | None = None,
    status: str = "UNSET",
) -> Span:
    """A span with id ``index`` (hex), times in seconds after a fixed epoch."""
    return Span(
        rollout_id=ROLLOUT,
        attempt_id=ATTEMPT,
        sequence_id=index if sequence_id is None else sequence_id,
        trace_id=TRACE,
        span_id=f"{index:016x}",
        parent_id=f"{parent:016x}" if parent is not None else None,
        name=name,
        start_time=T0 + start,
        end_time=T0 + end,
        attributes=dict(attributes or {}),
        status=SpanStatus(status) if status != "UNSET" else SpanStatus(),
    )


def llm_span(
    index: int,
    prompt: Sequence[dict[str, Any]] | None,
    response: dict[str, Any] | None,
    *,
    parent: int | None = None,
    start: float = 0.0,
    end: float = 1.0,
    model: str = "m",
    tools: list[Any] | None = None,
    prompt_token_ids: list[int] | None = None,
    response_token_ids: list[int] | None = None,
    **kwargs: Any,
) -> Span:
    """An LLM call span as the openai capture records it (OpenAI-format messages in)."""
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_RESPONSE_ID: f"resp-{index}",
    }
    if prompt is not None:
        attrs[semconv.GEN_AI_INPUT_MESSAGES] = json.dumps(to_semconv_messages(prompt))
    if response is not None:
        attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = json.dumps(
            [to_semconv_message(response, finish_reason="stop")]
        )
    if tools is not None:
        attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = json.dumps(tools)
    if prompt_token_ids is not None:
        attrs[semconv.LLM_PROMPT_TOKEN_IDS] = prompt_token_ids
    if response_token_ids is not None:
        attrs[semconv.LLM_RESPONSE_TOKEN_IDS] = response_token_ids
    attrs.update(kwargs.pop("attributes", {}))
    return span(index, f"chat {model}", parent=parent, start=start, end=end, attributes=attrs, **kwargs)


def reward_span(index: int, value: float, *, parent: int | None = None, start: float = 0.0) -> Span:
    return span(
        index,
        semconv.REWARD_SPAN,
        parent=parent,
        start=start,
        end=start,
        attributes={semconv.REWARD_VALUE: value},
    )


WEATHER_TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def sample_trace() -> list[Span]:
    """Root agent span; a tool-calling LLM call; a final LLM call; a reward of 2 (sequence order)."""
    user = {"role": "user", "content": "Weather in Paris?"}
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
        ],
    }
    tool = {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    final = {"role": "assistant", "content": "It is sunny."}
    return [
        llm_span(
            2, [user], call, parent=1, start=0.1, end=0.3, tools=[WEATHER_TOOL], prompt_token_ids=[1, 2]
        ),
        llm_span(3, [user, call, tool], final, parent=1, start=0.4, end=0.6, tools=[WEATHER_TOOL]),
        reward_span(4, 2.0, parent=1, start=0.7),
        span(1, "agent", start=0.0, end=0.8, attributes={semconv.AGENT_NAME: "weather-agent"}),
    ]


class TraceAdapterConformance(ConformanceSuite):
    """Behaviour every trace adapter must show; see the module docstring to subclass."""

    @pytest.fixture
    def adapter_factory(self) -> Callable[..., TraceAdapter[Any]]:
        """Override: return ``lambda **options: YourAdapter(**options)``."""
        raise NotImplementedError(f"{type(self).__name__} must define the adapter_factory fixture")

    def test_a_well_formed_trace_gives_data(self, adapter_factory: Callable[..., TraceAdapter[Any]]) -> None:
        adapter = adapter_factory()
        out = adapter.adapt(sample_trace())
        assert isinstance(out, list) and len(out) >= 1
        assert adapter.stats.traces == 1 and adapter.stats.outputs == len(out)
        assert adapter.stats.dropped == 0

    def test_the_result_does_not_depend_on_input_order(
        self, adapter_factory: Callable[..., TraceAdapter[Any]]
    ) -> None:
        spans = sample_trace()
        shuffled = list(spans)
        random.Random(7).shuffle(shuffled)
        assert adapter_factory().adapt(spans) == adapter_factory().adapt(shuffled)

    def test_input_spans_are_not_modified(self, adapter_factory: Callable[..., TraceAdapter[Any]]) -> None:
        spans = sample_trace()
        before = [s.to_dict() for s in spans]
        adapter_factory().adapt(spans)
        assert [s.to_dict() for s in spans] == before

    def test_a_trace_without_llm_call_raises_by_default(
        self, adapter_factory: Callable[..., TraceAdapter[Any]]
    ) -> None:
        with pytest.raises(BadTraceError, match="no_llm_call"):
            adapter_factory().adapt([span(1, "agent")])
        with pytest.raises(BadTraceError, match="no_llm_call"):
            adapter_factory().adapt([])

    def test_drop_policy_counts_instead_of_raising(
        self, adapter_factory: Callable[..., TraceAdapter[Any]]
    ) -> None:
        adapter = adapter_factory(on_bad_data="drop")
        assert adapter.adapt([span(1, "agent")]) == []
        assert adapter.stats.drop_counts == {"no_llm_call": 1}

    def test_an_llm_call_without_response_is_bad_data(
        self, adapter_factory: Callable[..., TraceAdapter[Any]]
    ) -> None:
        spans = [
            *sample_trace(),
            llm_span(5, [{"role": "user", "content": "again?"}], None, parent=1, start=0.65, end=0.68),
        ]
        with pytest.raises(BadTraceError, match="llm_call_without_response"):
            adapter_factory().adapt(spans)
        adapter = adapter_factory(on_bad_data="drop")
        good = adapter.adapt(spans)
        assert len(good) == len(adapter_factory().adapt(sample_trace()))
        assert adapter.stats.drop_counts == {"llm_call_without_response": 1}
