"""An LLM call recorded twice (a framework callback and the openai capture or the proxy) is one
call for the adapters, keeping the token ids of the lower-level record."""

from __future__ import annotations

from typing import Any

from agentlightning_core import semconv
from agentlightning_core.adapter.messages import TraceToMessages
from agentlightning_core.adapter.triplet import TracerTraceToTriplet
from agentlightning_core.testing.adapter import llm_span, reward_span, span

Q = [{"role": "user", "content": "q"}]


def answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def linked_trace() -> list[Any]:
    """A LangGraph node span with the handler's LLM span, and the openai capture's span of the
    same call beside it (a sibling under the trace root), linked by the response id."""
    same_id = {semconv.GEN_AI_RESPONSE_ID: "chatcmpl-1"}
    return [
        span(1, "write_sql", start=0, end=5, attributes={semconv.AGENT_NAME: "write_sql"}),
        llm_span(
            2,
            Q,
            answer("SELECT 1"),
            parent=1,
            start=1,
            end=4,
            attributes={**same_id, semconv.AGENT_NAME: "write_sql"},
        ),
        llm_span(
            3,
            Q,
            answer("SELECT 1"),
            start=2,
            end=3,
            prompt_token_ids=[1, 2],
            response_token_ids=[3],
            attributes=same_id,
        ),
        llm_span(4, Q, answer("other call"), start=6, end=7, prompt_token_ids=[5], response_token_ids=[6]),
        reward_span(5, 1.0, start=8),
    ]


def test_a_call_recorded_twice_is_one_triplet_with_the_token_ids_and_the_node_name() -> None:
    triplets = TracerTraceToTriplet().adapt(linked_trace())
    assert [t.response["token_ids"] for t in triplets] == [[3], [6]]
    assert (
        triplets[0].metadata["agent_name"] == "write_sql"
        and triplets[0].metadata["response_id"] == "chatcmpl-1"
    )
    (node_only,) = TracerTraceToTriplet(agent_match="^write_sql$").adapt(linked_trace())
    assert node_only.prompt["token_ids"] == [1, 2] and node_only.response["token_ids"] == [3]


def test_the_messages_adapter_sees_one_call_too() -> None:
    samples = TraceToMessages().adapt(linked_trace())
    assert [s["messages"][-1]["content"] for s in samples] == ["SELECT 1", "other call"]


def test_a_nested_record_with_token_ids_gives_its_ids_to_the_outer_call() -> None:
    spans = [
        span(1, "agent", start=0, end=5, attributes={semconv.AGENT_NAME: "coder"}),
        llm_span(
            2, Q, answer("outer"), parent=1, start=1, end=4, attributes={semconv.GEN_AI_RESPONSE_ID: "r"}
        ),
        llm_span(3, None, None, parent=2, start=2, end=3, prompt_token_ids=[7], response_token_ids=[8, 9]),
        reward_span(4, 0.5, start=6),
    ]
    (triplet,) = TracerTraceToTriplet(agent_match="coder").adapt(spans)
    assert triplet.prompt["token_ids"] == [7] and triplet.response["token_ids"] == [8, 9]
    assert triplet.response["message"]["content"] == "outer"  # messages the kept record lacked
    assert triplet.reward == 0.5
