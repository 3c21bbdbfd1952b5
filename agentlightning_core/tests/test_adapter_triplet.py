"""Trace adapters: the conformance suite plus tree repair, matching and reward policies."""

from __future__ import annotations

from typing import Any

import pytest

from agentlightning_core import semconv
from agentlightning_core.adapter.base import BadTraceError
from agentlightning_core.adapter.messages import TraceToMessages
from agentlightning_core.adapter.triplet import LlmProxyTraceToTriplet, TracerTraceToTriplet
from agentlightning_core.plugins import resolve_component
from agentlightning_core.testing.adapter import (
    WEATHER_TOOL,
    TraceAdapterConformance,
    llm_span,
    reward_span,
    sample_trace,
    span,
)

Q = [{"role": "user", "content": "q"}]


def answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


class TestTracerTraceToTriplet(TraceAdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Any:
        return TracerTraceToTriplet


class TestLlmProxyTraceToTriplet(TraceAdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Any:
        return LlmProxyTraceToTriplet


class TestTraceToMessages(TraceAdapterConformance):
    @pytest.fixture
    def adapter_factory(self) -> Any:
        return TraceToMessages


def test_adapters_are_registered_by_name() -> None:
    assert isinstance(resolve_component("adapter", "tracer_triplet"), TracerTraceToTriplet)
    assert isinstance(resolve_component("adapter", "proxy_triplet"), LlmProxyTraceToTriplet)
    adapter = resolve_component("adapter", {"type": "messages", "on_bad_data": "drop"})
    assert isinstance(adapter, TraceToMessages) and adapter.on_bad_data == "drop"


def test_the_sample_trace_gives_one_triplet_per_call_with_the_reward_on_the_last() -> None:
    first, last = TracerTraceToTriplet().adapt(sample_trace())
    assert first.prompt["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert first.prompt["tools"] == [WEATHER_TOOL] and first.prompt["token_ids"] == [1, 2]
    assert first.response["message"]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": '{"city":"Paris"}',
    }
    assert last.prompt["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert last.response["message"] == {"role": "assistant", "content": "It is sunny."}
    assert (first.reward, last.reward) == (None, 2.0)
    assert last.metadata["agent_name"] == "weather-agent" and last.metadata["response_id"] == "resp-3"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("last", [None, None, 0.5]), ("broadcast", [0.5, 0.5, 0.5]), ("preceding", [1.0, None, 0.5])],
)
def test_reward_policies(policy: str, expected: list[float | None]) -> None:
    spans = [
        span(1, "agent", start=0, end=10),
        llm_span(2, Q, answer("a"), parent=1, start=1, end=2),
        reward_span(3, 1.0, parent=1, start=2.5),
        llm_span(4, Q, answer("b"), parent=1, start=3, end=4),
        llm_span(5, Q, answer("c"), parent=1, start=5, end=6),
        reward_span(6, 0.5, parent=1, start=7),
    ]
    triplets = TracerTraceToTriplet(reward_policy=policy).adapt(spans)  # type: ignore[arg-type]
    assert [t.reward for t in triplets] == expected


def test_a_reward_of_zero_is_kept() -> None:
    spans = [llm_span(1, Q, answer("a"), end=1), reward_span(2, 0.0, start=2)]
    assert [t.reward for t in TracerTraceToTriplet().adapt(spans)] == [0.0]


def test_a_rollout_without_reward_raises_or_is_dropped_or_allowed() -> None:
    spans = [llm_span(1, Q, answer("a"))]
    with pytest.raises(BadTraceError, match="No reward"):
        TracerTraceToTriplet().adapt(spans)
    dropping = TracerTraceToTriplet(on_bad_data="drop")
    assert dropping.adapt(spans) == [] and dropping.stats.drop_counts == {"no_reward": 1}
    (triplet,) = TracerTraceToTriplet(require_reward=False).adapt(spans)
    assert triplet.reward is None


def test_an_llm_call_without_prompt_is_bad_data() -> None:
    spans = [llm_span(1, None, answer("a")), reward_span(2, 1.0, start=2)]
    with pytest.raises(BadTraceError, match="llm_call_without_prompt"):
        TracerTraceToTriplet().adapt(spans)
    adapter = TracerTraceToTriplet(on_bad_data="drop")
    assert adapter.adapt(spans) == [] and adapter.stats.drop_counts == {"llm_call_without_prompt": 1}


def test_token_ids_alone_count_as_prompt_and_response() -> None:
    spans = [
        llm_span(1, None, None, prompt_token_ids=[1, 2], response_token_ids=[3]),
        reward_span(2, 1.0, start=2),
    ]
    (triplet,) = TracerTraceToTriplet().adapt(spans)
    assert triplet.prompt["token_ids"] == [1, 2] and triplet.response["token_ids"] == [3]


def test_one_rule_decides_which_llm_calls_are_usable() -> None:
    from agentlightning_core.adapter.llm_calls import LlmCall

    ids_only = LlmCall.from_span(llm_span(1, None, None, prompt_token_ids=[1], response_token_ids=[2]))
    no_response = LlmCall.from_span(llm_span(2, Q, None, prompt_token_ids=[1]))
    failed = LlmCall.from_span(llm_span(3, Q, answer("a"), status="ERROR"))
    assert ids_only.defect() is None
    assert ids_only.defect(need_messages=True) == "llm_call_without_prompt"
    assert no_response.defect() == "llm_call_without_response"
    assert failed.defect() == failed.defect(need_messages=True) == "llm_call_failed"
    # the messages adapter needs messages: token ids alone are bad data there
    spans = [llm_span(1, None, None, prompt_token_ids=[1, 2], response_token_ids=[3])]
    adapter = TraceToMessages(on_bad_data="drop")
    assert adapter.adapt(spans) == [] and adapter.stats.drop_counts == {"llm_call_without_prompt": 1}


def test_a_failed_llm_call_is_skipped_and_counted() -> None:
    spans = [
        llm_span(1, Q, None, status="ERROR", end=1),
        llm_span(2, Q, answer("ok"), start=2, end=3),
        reward_span(3, 1.0, start=4),
    ]
    adapter = TracerTraceToTriplet()
    (triplet,) = adapter.adapt(spans)
    assert triplet.response["message"]["content"] == "ok"
    assert adapter.stats.drop_counts == {"llm_call_failed": 1}


def test_llm_calls_are_matched_by_name_pattern_and_outermost_only() -> None:
    spans = [
        span(
            1,
            "openai.chat.completions",
            start=0,
            end=5,
            attributes=llm_span(9, Q, answer("outer")).attributes,
        ),
        llm_span(2, Q, answer("inner"), parent=1, start=1, end=2),
        span(3, "embeddings", start=6, end=7),
        reward_span(4, 1.0, start=8),
    ]
    (triplet,) = TracerTraceToTriplet().adapt(spans)
    assert triplet.response["message"]["content"] == "outer"
    inner_only = TracerTraceToTriplet(llm_call_match=r"^chat ").adapt(spans)
    assert [t.response["message"]["content"] for t in inner_only] == ["inner"]


def test_a_matched_span_without_llm_attributes_is_counted_as_missing_its_prompt() -> None:
    adapter = TracerTraceToTriplet(llm_call_match=r"^embeddings$", on_bad_data="drop")
    assert adapter.adapt([span(3, "embeddings"), reward_span(4, 1.0, start=2)]) == []
    assert adapter.stats.drop_counts == {"llm_call_without_prompt": 1}


def test_llm_calls_are_matched_by_agent_name_of_an_ancestor() -> None:
    spans = [
        span(1, "planner", start=0, end=3, attributes={semconv.AGENT_NAME: "planner"}),
        llm_span(2, Q, answer("plan"), parent=1, start=1, end=2),
        span(3, "coder", start=4, end=7, attributes={"agent.name": "coder"}),
        llm_span(4, Q, answer("code"), parent=3, start=5, end=6),
        reward_span(5, 1.0, start=8),
    ]
    (triplet,) = TracerTraceToTriplet(agent_match="^coder$", reward_policy="broadcast").adapt(spans)
    assert triplet.response["message"]["content"] == "code" and triplet.metadata["agent_name"] == "coder"
    with pytest.raises(BadTraceError, match="no_llm_call"):
        TracerTraceToTriplet(agent_match="^nobody$").adapt(spans)


def test_missing_parents_become_virtual_and_misplaced_children_are_repaired_by_time() -> None:
    # The agent span's parent was never recorded; an LLM call lost its context (a thread) and
    # became a root of its own, but its time lies inside the agent span.
    spans = [
        span(1, "agent", parent=99, start=0, end=10, attributes={semconv.AGENT_NAME: "solver"}),
        llm_span(2, Q, answer("x"), start=2, end=3),
        reward_span(3, 1.0, parent=1, start=9),
    ]
    (triplet,) = TracerTraceToTriplet(agent_match="^solver$").adapt(spans)
    assert triplet.metadata["agent_name"] == "solver"
    with pytest.raises(BadTraceError, match="no_llm_call"):
        TracerTraceToTriplet(agent_match="^solver$", repair_hierarchy=False).adapt(spans)


def test_the_proxy_adapter_orders_by_sequence_id_and_ignores_the_tree() -> None:
    spans = [
        llm_span(1, Q, answer("second"), start=5, end=6, sequence_id=2),
        llm_span(2, Q, answer("first"), start=7, end=8, sequence_id=1),
        reward_span(3, 1.0, start=0),
    ]
    object.__setattr__(spans[2], "sequence_id", 3)
    triplets = LlmProxyTraceToTriplet(reward_policy="preceding").adapt(spans)
    assert [t.response["message"]["content"] for t in triplets] == ["first", "second"]
    assert [t.reward for t in triplets] == [None, 1.0]


def test_trace_to_messages_gives_fine_tuning_conversations_with_tools() -> None:
    first, last = TraceToMessages().adapt(sample_trace())
    assert first["tools"] == [WEATHER_TOOL]
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert last["messages"][-1] == {"role": "assistant", "content": "It is sunny."}


def test_invalid_adapter_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        TracerTraceToTriplet(on_bad_data="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'first'"):
        TracerTraceToTriplet(reward_policy="first")  # type: ignore[arg-type]
