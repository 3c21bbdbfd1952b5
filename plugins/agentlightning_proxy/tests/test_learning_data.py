"""The proxy's spans give the same learning data as the tracer's; token ids and drift."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import openai
import pytest

from agentlightning_core import (
    AttemptedRollout,
    InMemoryLightningStore,
    LlmProxyTraceToTriplet,
    OtelTracer,
    Span,
    TracerTraceToTriplet,
    TraceToMessages,
    emit_reward,
    semconv,
)
from agentlightning_core.emitter.reward import reward_attributes
from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall
from agentlightning_proxy import LLMProxy, Upstream
from agentlightning_proxy import attributes as pa

pytestmark = pytest.mark.anyio

CHAT_TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
RESPONSES_TOOL = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]


def replies() -> list[Reply]:
    return [
        Reply(tool_calls=[ToolCall("weather", '{"city": "Paris"}', id="call_w")]),
        Reply(content="Sunny in Paris."),
    ]


def conversation(client: openai.OpenAI, api: str) -> None:
    """Two turns: the model calls a tool, then answers from its result (the second turn streams for *-stream)."""
    stream = api.endswith("stream")
    if api.startswith("chat"):
        first = client.chat.completions.create(model="m", messages=ASK, tools=[CHAT_TOOL])  # type: ignore[arg-type,list-item]
        history = [
            *ASK,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "call_w", "content": "sunny"},
        ]
        second: Any = client.chat.completions.create(
            model="m", messages=history, tools=[CHAT_TOOL], stream=stream
        )  # type: ignore[call-overload]
    else:
        answer = client.responses.create(
            model="m", instructions="Be brief.", input="Weather in Paris?", tools=[RESPONSES_TOOL]
        )  # type: ignore[list-item]
        items = [
            {"role": "user", "content": "Weather in Paris?"},
            *[item.model_dump(exclude_none=True) for item in answer.output],
            {"type": "function_call_output", "call_id": "call_w", "output": "sunny"},
        ]
        second = client.responses.create(
            model="m", instructions="Be brief.", input=items, tools=[RESPONSES_TOOL], stream=stream
        )  # type: ignore[call-overload]
    if stream:
        for _ in second:
            pass


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    tracer = OtelTracer()
    tracer.init()
    yield tracer
    tracer.teardown()


def learning_data(triplet_adapter: Any, spans: list[Span]) -> tuple[list[Any], list[Any]]:
    triplets = [(t.prompt, t.response, t.reward) for t in triplet_adapter.adapt(spans)]
    return triplets, TraceToMessages().adapt(spans)


@pytest.mark.parametrize("api", ["chat", "chat-stream", "responses", "responses-stream"])
async def test_proxy_spans_give_the_same_triplets_and_messages_as_tracer_spans(
    api: str, tracer: OtelTracer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    def traced() -> list[Span]:
        with (
            OpenAIServer(replies()) as server,
            openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
            tracer.trace_context("agent"),
        ):
            conversation(client, api)
            emit_reward(0.75)
        return tracer.get_last_trace()

    tracer_spans = await anyio.to_thread.run_sync(traced)
    with OpenAIServer(replies()) as server:
        async with LLMProxy(Upstream("s", server.base_url), store) as proxy:
            base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)
            with openai.OpenAI(base_url=base, api_key="k", max_retries=0) as client:
                await anyio.to_thread.run_sync(conversation, client, api)
    reward = Span(
        rollout_id=attempt.rollout_id,
        attempt_id=attempt.attempt.attempt_id,
        sequence_id=0,
        trace_id="1" * 32,
        span_id="2" * 16,
        parent_id=None,
        name=semconv.REWARD_SPAN,
        attributes=reward_attributes(0.75),
    )
    await store.add_span(reward)
    proxy_spans = list(await store.query_spans(attempt.rollout_id))
    assert len([s for s in proxy_spans if pa.SURFACE in s.attributes]) == 2
    from_tracer = learning_data(TracerTraceToTriplet(), tracer_spans)
    from_proxy = learning_data(LlmProxyTraceToTriplet(), proxy_spans)
    assert from_proxy == from_tracer
    triplets, conversations = from_proxy
    assert (
        len(triplets) == 2
        and triplets[-1][2] == 0.75
        and triplets[-1][1]["message"]["content"] == "Sunny in Paris."
    )
    assert conversations[1]["messages"][-2] == {"role": "tool", "tool_call_id": "call_w", "content": "sunny"}


async def test_capture_tokens_records_token_ids_hides_them_from_the_client_and_flags_drift(
    server: OpenAIServer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    server.add_reply(Reply(content="a", prompt_token_ids=[1, 2, 3], token_ids=[4, 5]))
    server.add_reply(
        Reply(content="b", prompt_token_ids=[1, 2, 3, 4, 5, 6], token_ids=[7])
    )  # extends: no drift
    server.add_reply(Reply(content="c", prompt_token_ids=[1, 2, 3, 4, 9, 6, 7, 8], token_ids=[10]))  # drifted
    server.add_reply(Reply(content="d", prompt_token_ids=[1], token_ids=[2]))  # the client asks itself
    async with LLMProxy(Upstream("s", server.base_url), store, capture_tokens=True) as proxy:
        base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)
        async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0) as client:
            plain = await client.chat.completions.with_raw_response.create(model="m", messages=ASK)  # type: ignore[arg-type]
            assert (
                "token_ids" not in plain.text
                and json.loads(plain.text)["choices"][0]["message"]["content"] == "a"
            )
            stream = await client.chat.completions.create(model="m", messages=ASK, stream=True)  # type: ignore[arg-type]
            chunks = [chunk async for chunk in stream]
            assert all("token_ids" not in chunk.model_dump_json() for chunk in chunks)
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "b"
            await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
            asked = await client.chat.completions.with_raw_response.create(
                model="m",
                messages=ASK,
                extra_body={"return_token_ids": True},  # type: ignore[arg-type]
            )
            assert json.loads(asked.text)["prompt_token_ids"] == [1]
    assert [r.get("return_token_ids") for r in server.requests] == [True] * 4
    one, two, three, four = [
        s for s in await store.query_spans(attempt.rollout_id) if pa.SURFACE in s.attributes
    ]
    assert one.attributes[semconv.LLM_PROMPT_TOKEN_IDS] == [1, 2, 3] and one.attributes[
        semconv.LLM_RESPONSE_TOKEN_IDS
    ] == [4, 5]
    assert two.attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == [7] and two.attributes[pa.TOKEN_DRIFT] is False
    assert pa.TOKEN_DRIFT not in one.attributes and three.attributes[pa.TOKEN_DRIFT] is True
    assert four.attributes[pa.TOKEN_DRIFT] is True and proxy.stats.token_drift == 2


async def test_a_call_the_tracer_records_is_not_recorded_again_by_the_proxy(
    tracer: OtelTracer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    with OpenAIServer(replies()) as server:
        async with LLMProxy(Upstream("s", server.base_url), store) as proxy:
            base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)

            def traced() -> list[Span]:
                with (
                    openai.OpenAI(base_url=base, api_key="k", max_retries=0) as client,
                    tracer.trace_context("agent"),
                ):
                    conversation(client, "chat")
                return tracer.get_last_trace()

            tracer_spans = await anyio.to_thread.run_sync(traced)
    assert [s for s in tracer_spans if s.name.startswith("chat")], "the tracer recorded the call"
    assert proxy.stats.traced_elsewhere >= 1 and proxy.stats.recorded == 0
    assert list(await store.query_spans(attempt.rollout_id)) == []
