"""LLM calls recorded by AgentOps' openai instrumentor become triplets and messages through the
core's adapters (its flattened ``gen_ai.prompt.N.*`` attributes), against the scripted server."""

from __future__ import annotations

from collections.abc import Iterator

import agentops
import openai
import pytest

from agentlightning_agentops import AgentOpsTracer
from agentlightning_core import TracerTraceToTriplet, TraceToMessages, emit_reward
from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall

pytestmark = pytest.mark.anyio

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def tracer() -> Iterator[AgentOpsTracer]:
    tracer = AgentOpsTracer()
    tracer.init()
    yield tracer
    tracer.teardown()


def test_a_tool_calling_conversation_becomes_triplets_and_messages(tracer: AgentOpsTracer) -> None:
    replies = [Reply(tool_calls=[ToolCall("weather", '{"city": "Paris"}', id="call-1")]), "Sunny in Paris."]

    @agentops.agent(name="weather-agent")
    def run(client: openai.OpenAI) -> str:
        messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(model="m1", messages=messages, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
        second = client.chat.completions.create(model="m1", messages=messages)  # type: ignore[arg-type]
        emit_reward(1.0)
        return second.choices[0].message.content or ""

    with (
        OpenAIServer(replies) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        assert run(client) == "Sunny in Paris."
    spans = tracer.get_last_trace()
    llm = [s for s in spans if s.name == "openai.chat.completion"]
    assert len(llm) == 2
    assert llm[0].attributes["gen_ai.prompt.0.content"] == "Weather in Paris?"  # the flattened form

    triplets = TracerTraceToTriplet(agent_match="^weather-agent$").adapt(spans)
    assert len(triplets) == 2
    assert triplets[0].prompt["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert [t["function"]["name"] for t in triplets[0].prompt["tools"]] == ["weather"]
    call = triplets[0].response["message"]["tool_calls"][0]
    assert call["id"] == "call-1" and call["function"] == {
        "name": "weather",
        "arguments": '{"city": "Paris"}',
    }
    assert triplets[1].prompt["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call-1",
        "content": "sunny",
    }
    assert triplets[1].response["message"]["content"] == "Sunny in Paris."
    assert [t.reward for t in triplets] == [None, 1.0]
    assert triplets[1].metadata["agent_name"] == "weather-agent"

    conversations = TraceToMessages().adapt(spans)
    assert conversations[1]["messages"][-1] == {"role": "assistant", "content": "Sunny in Paris."}


async def test_async_client_calls_are_recorded(tracer: AgentOpsTracer) -> None:
    with OpenAIServer(["Four."]) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        async with tracer.trace_context("agent"):
            reply = await client.chat.completions.create(
                model="m2", messages=[{"role": "user", "content": "2 + 2?"}]
            )
            emit_reward(0.5)
        await client.close()
    assert reply.choices[0].message.content == "Four."
    (triplet,) = TracerTraceToTriplet().adapt(tracer.get_last_trace())
    assert triplet.prompt["messages"] == [{"role": "user", "content": "2 + 2?"}]
    assert triplet.response["message"] == {"role": "assistant", "content": "Four."}
    assert triplet.reward == 0.5 and triplet.metadata["model"] == "m2"


def test_streamed_calls_are_recorded(tracer: AgentOpsTracer) -> None:
    with (
        OpenAIServer(["Hello there."]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        stream = client.chat.completions.create(
            model="m3", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        emit_reward(1.0)
    assert text == "Hello there."
    (conversation,) = TraceToMessages().adapt(tracer.get_last_trace())
    assert conversation["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there."},
    ]
