"""Every surface through the proxy with the real openai and anthropic clients: answers pass
through unchanged and each call becomes one span of the right attempt."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import anyio
import openai
import pytest

from agentlightning_core import AttemptedRollout, InMemoryLightningStore, Span, semconv
from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall
from agentlightning_proxy import LLMProxy
from agentlightning_proxy import attributes as pa

pytestmark = pytest.mark.anyio

WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def url(proxy: LLMProxy, attempt: AttemptedRollout) -> str:
    return proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)


async def calls(store: InMemoryLightningStore, attempt: AttemptedRollout) -> list[Span]:
    spans = await store.query_spans(attempt.rollout_id, attempt.attempt.attempt_id)
    return [s for s in spans if pa.SURFACE in s.attributes]


def decoded(span: Span, key: str) -> Any:
    return json.loads(span.attributes[key])


async def test_chat_completion_is_answered_and_recorded_with_genai_attributes(
    proxy: LLMProxy, server: OpenAIServer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    server.add_reply(Reply(content="Sunny.", prompt_tokens=7, completion_tokens=2))
    async with openai.AsyncOpenAI(base_url=url(proxy, attempt), api_key="k", max_retries=0) as client:
        answer = await client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": "Weather?"}], temperature=0.5, max_tokens=9
        )
    assert answer.choices[0].message.content == "Sunny." and answer.id == "chatcmpl-test-1"
    (span,) = await calls(store, attempt)
    a = span.attributes
    assert span.name == "chat small" and span.status.status_code == "OK" and span.sequence_id >= 1
    assert a[semconv.GEN_AI_REQUEST_MODEL] == "small" and a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 9 and a[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-test-1"
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 7 and a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert a[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"] and a[semconv.LLM_STREAM] is False
    assert a[pa.HTTP_STATUS] == 200 and a[pa.UPSTREAM] == "scripted" and a[pa.RETRIES] == 0
    assert decoded(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}
    ]
    assert decoded(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}
    ]
    assert span.end_time is not None and span.start_time is not None and span.end_time >= span.start_time


async def test_a_sync_client_streams_tool_calls_chunk_by_chunk(
    proxy: LLMProxy, server: OpenAIServer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    server.add_reply(
        Reply(content="Let me check", tool_calls=[ToolCall("weather", '{"city": "Paris"}', id="call_w")])
    )

    def run() -> list[Any]:
        with openai.OpenAI(base_url=url(proxy, attempt), api_key="k", max_retries=0) as client:
            stream = client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "Paris?"}],
                tools=[WEATHER],  # type: ignore[list-item]
                stream=True,
                stream_options={"include_usage": True},
            )
            return list(stream)

    chunks = await anyio.to_thread.run_sync(run)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Let me check"
    assert len(chunks) > 4  # passed through as chunks, not folded into one answer
    (span,) = await calls(store, attempt)
    assert span.attributes[semconv.LLM_STREAM] is True
    assert decoded(span, semconv.GEN_AI_TOOL_DEFINITIONS) == [WEATHER]
    (output,) = decoded(span, semconv.GEN_AI_OUTPUT_MESSAGES)
    assert output["finish_reason"] == "tool_calls"
    assert output["parts"] == [
        {"type": "text", "content": "Let me check"},
        {"type": "tool_call", "id": "call_w", "name": "weather", "arguments": '{"city": "Paris"}'},
    ]
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1


async def test_json_mode_n_and_logprobs_reach_the_upstream_untouched(
    proxy: LLMProxy, server: OpenAIServer, attempt: AttemptedRollout
) -> None:
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": "json please"}],
        "n": 2,
        "logprobs": True,
        "top_logprobs": 3,
        "response_format": {"type": "json_object"},
        "seed": 7,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url(proxy, attempt) + "/chat/completions", json=request) as response,
    ):
        assert response.status == 200
        body = await response.json()
    assert server.requests == [request]
    assert body["choices"][0]["message"]["content"] == "json please"


async def test_header_attribution_and_the_plain_v1_path(
    proxy: LLMProxy, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    headers = {"x-rollout-id": attempt.rollout_id, "x-attempt-id": attempt.attempt.attempt_id}
    async with openai.AsyncOpenAI(
        base_url=proxy.base_url, api_key="k", max_retries=0, default_headers=headers
    ) as client:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "by header"}])
    (span,) = await calls(store, attempt)
    assert span.rollout_id == attempt.rollout_id and span.attempt_id == attempt.attempt.attempt_id
    assert proxy.stats.unattributed == 0 and proxy.stats.recorded == 1


async def test_calls_without_ids_or_for_unknown_rollouts_are_forwarded_and_counted(
    proxy: LLMProxy, store: InMemoryLightningStore
) -> None:
    async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="k", max_retries=0) as client:
        answer = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "nobody"}]
        )
    assert answer.choices[0].message.content == "nobody"
    unknown = proxy.base_url_for("ro-missing", "at-missing")
    async with openai.AsyncOpenAI(base_url=unknown, api_key="k", max_retries=0) as client:
        answer = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "ghost"}]
        )
    assert answer.choices[0].message.content == "ghost"
    assert proxy.stats.unattributed == 2 and proxy.stats.recorded == 0
    first, second = proxy.unattributed
    assert (
        first.rollout_id == pa.UNATTRIBUTED_ID
        and first.attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-test-1"
    )
    assert second.attributes[semconv.ROLLOUT_ID] == "ro-missing" and second.status.status_code == "OK"
    assert (await store.statistics()).get("spans", 0) == 0


async def test_two_concurrent_attempts_never_mix(proxy: LLMProxy, store: InMemoryLightningStore) -> None:
    attempts = [await store.start_rollout({"task": i}) for i in range(2)]

    async def agent(index: int, turn: int) -> None:
        async with openai.AsyncOpenAI(
            base_url=url(proxy, attempts[index]), api_key="k", max_retries=0
        ) as client:
            stream = turn % 2 == 1
            text = f"agent{index} turn{turn}"
            result = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": text}], stream=stream
            )
            if stream:
                assert "".join([c.choices[0].delta.content or "" async for c in result if c.choices]) == text  # type: ignore[union-attr]

    async with anyio.create_task_group() as tg:
        for turn in range(6):
            for index in range(2):
                tg.start_soon(agent, index, turn)
    for index, attempt in enumerate(attempts):
        spans = await calls(store, attempt)
        assert len(spans) == 6
        for span in spans:
            (prompt,) = decoded(span, semconv.GEN_AI_INPUT_MESSAGES)
            (output,) = decoded(span, semconv.GEN_AI_OUTPUT_MESSAGES)
            assert prompt["parts"][0]["content"].startswith(f"agent{index} ")
            assert output["parts"][0]["content"] == prompt["parts"][0]["content"]
        assert len({s.sequence_id for s in spans}) == 6


async def test_anthropic_messages_with_the_real_anthropic_client(
    proxy: LLMProxy, server: OpenAIServer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    server.add_reply(
        Reply(content="Checking.", tool_calls=[ToolCall("weather", '{"city": "Oslo"}', id="toolu_1")])
    )
    server.add_reply(Reply(content="Snow in Oslo."))
    base = proxy.url + f"/rollout/{attempt.rollout_id}/attempt/{attempt.attempt.attempt_id}"
    tool = {"name": "weather", "description": "weather of a city", "input_schema": {"type": "object"}}
    async with anthropic.AsyncAnthropic(base_url=base, api_key="k", max_retries=0) as client:
        first = await client.messages.create(
            model="claude-test",
            max_tokens=50,
            system="Be brief.",
            tools=[tool],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "Oslo?"}],
        )
        assert first.stop_reason == "tool_use" and first.content[1].type == "tool_use"
        history: list[Any] = [
            {"role": "user", "content": "Oslo?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3C, snow"}],
            },
        ]
        async with client.messages.stream(model="claude-test", max_tokens=50, messages=history) as stream:
            texts = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
    assert "".join(texts) == "Snow in Oslo." and final.content[0].text == "Snow in Oslo."  # type: ignore[union-attr]
    one, two = await calls(store, attempt)
    assert one.name == "chat claude-test" and one.attributes[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert decoded(one, semconv.GEN_AI_INPUT_MESSAGES)[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "Be brief."}],
    }
    assert decoded(one, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Checking."},
                {"type": "tool_call", "id": "toolu_1", "name": "weather", "arguments": '{"city": "Oslo"}'},
            ],
            "finish_reason": "tool_use",
        }
    ]
    assert decoded(two, semconv.GEN_AI_INPUT_MESSAGES)[2] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "toolu_1", "response": "-3C, snow"}],
    }
    assert decoded(two, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "text", "content": "Snow in Oslo."}
    ]
    assert (
        two.attributes[semconv.LLM_STREAM] is True and two.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    )


async def test_completions_embeddings_and_models(
    proxy: LLMProxy, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    async with openai.AsyncOpenAI(base_url=url(proxy, attempt), api_key="k", max_retries=0) as client:
        text = await client.completions.create(model="m", prompt="once upon a time")
        streamed = await client.completions.create(model="m", prompt="there was a proxy", stream=True)
        pieces = [c.choices[0].text async for c in streamed if c.choices]
        vectors = await client.embeddings.create(model="embed", input=["a", "b", "c"])
        models = await client.models.list()
    assert text.choices[0].text == "once upon a time" and "".join(pieces) == "there was a proxy"
    assert len(vectors.data) == 3 and len(vectors.data[0].embedding) == 8
    assert [m.id for m in models.data] == []  # the fixture's upstream serves any model ("*")
    plain, stream, embed = await calls(store, attempt)
    assert plain.name == "text_completion m" and stream.attributes[semconv.LLM_STREAM] is True
    assert decoded(stream, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "text", "content": "there was a proxy"}
    ]
    assert embed.name == "embeddings embed" and embed.attributes[pa.EMBEDDING_INPUTS] == 3
    assert embed.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 3


async def test_stream_events_json_accepts_but_orjson_refuses_are_still_folded() -> None:
    from agentlightning_proxy._capture import StreamFold

    fold = StreamFold("chat.completions")
    events = [
        b'{"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}], "x": NaN}',
        b'{"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}], "n": 123456789012345678901234567890}',
        b"{not json",
    ]
    fold.feed(b"".join(b"data: " + e + b"\n\n" for e in events))
    fold.close()
    assert fold.events == 2 and fold.bad_events == 1
    (choice,) = fold.folded()["choices"]
    assert choice["message"]["content"] == "ab" and choice["finish_reason"] == "stop"
