"""LLM calls of the real openai client against a real local server become GenAI spans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from agentlightning_core import semconv
from agentlightning_core.spans import Span
from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall
from agentlightning_core.tracer import _openai_capture as openai_capture
from agentlightning_core.tracer._openai_capture import is_instrumented
from agentlightning_core.tracer.otel import OtelTracer

WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    tracer = OtelTracer()
    tracer.init()
    yield tracer
    tracer.teardown()


def llm_spans(tracer: OtelTracer) -> list[Span]:
    return [s for s in tracer.get_last_trace() if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]


def outputs(span: Span) -> list[dict[str, Any]]:
    return json.loads(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])  # type: ignore[no-any-return]


def test_a_sync_call_records_request_response_usage_and_token_ids(tracer: OtelTracer) -> None:
    reply = Reply(
        content="Sunny.", prompt_tokens=7, completion_tokens=2, prompt_token_ids=[1, 2, 3], token_ids=[9, 8]
    )
    with (
        OpenAIServer([reply]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        client.chat.completions.create(model="small", messages=ASK, temperature=0.5, max_tokens=20)
    (span,) = llm_spans(tracer)
    a = span.attributes
    assert span.name == "chat small" and span.kind == "CLIENT"
    assert a[semconv.GEN_AI_REQUEST_MODEL] == "small" and a[semconv.GEN_AI_RESPONSE_MODEL] == "small"
    assert a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5 and a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 20
    assert a[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-test-1"
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 7 and a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert a[semconv.LLM_PROMPT_TOKEN_IDS] == [1, 2, 3] and a[semconv.LLM_RESPONSE_TOKEN_IDS] == [9, 8]
    assert json.loads(a[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    assert outputs(span) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}
    ]
    assert a[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]


def test_tool_calls_and_tool_definitions_are_recorded(tracer: OtelTracer) -> None:
    reply = Reply(tool_calls=[ToolCall("weather", '{"city": "Paris"}', id="call_w")])
    with (
        OpenAIServer([reply]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        client.chat.completions.create(model="m", messages=ASK, tools=[WEATHER])  # type: ignore[list-item]
    (span,) = llm_spans(tracer)
    assert json.loads(span.attributes[semconv.GEN_AI_TOOL_DEFINITIONS]) == [WEATHER]
    assert outputs(span)[0]["parts"] == [
        {"type": "tool_call", "id": "call_w", "name": "weather", "arguments": '{"city": "Paris"}'}
    ]
    assert outputs(span)[0]["finish_reason"] == "tool_calls"


def test_a_sync_stream_is_recorded_when_consumed(tracer: OtelTracer) -> None:
    reply = Reply(content="It is sunny today.", prompt_token_ids=[4, 5], token_ids=[6, 7, 8])
    with (
        OpenAIServer([reply]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        stream = client.chat.completions.create(
            model="m", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "It is sunny today."
    (span,) = llm_spans(tracer)
    a = span.attributes
    assert a[semconv.LLM_STREAM] is True
    assert outputs(span)[0]["parts"] == [{"type": "text", "content": "It is sunny today."}]
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert a[semconv.LLM_PROMPT_TOKEN_IDS] == [4, 5] and a[semconv.LLM_RESPONSE_TOKEN_IDS] == [6, 7, 8]


def test_a_stream_closed_early_still_ends_its_span(tracer: OtelTracer) -> None:
    with (
        OpenAIServer(["one two three four"]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
        client.chat.completions.create(model="m", messages=ASK, stream=True) as stream,
    ):
        next(iter(stream))
    (span,) = llm_spans(tracer)
    assert span.end_time is not None


@pytest.mark.anyio
async def test_async_calls_and_async_streams_with_tool_calls_are_recorded(tracer: OtelTracer) -> None:
    replies = [Reply(content="plain"), Reply(tool_calls=[ToolCall("weather", '{"city": "Oslo"}', id="c9")])]
    with OpenAIServer(replies) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        async with client, tracer.trace_context("agent"):
            first = await client.chat.completions.create(model="m", messages=ASK)
            stream = await client.chat.completions.create(
                model="m",
                messages=ASK,
                tools=[WEATHER],
                stream=True,  # type: ignore[list-item]
            )
            chunks = [c async for c in stream]
    assert first.choices[0].message.content == "plain" and chunks
    plain, streamed = llm_spans(tracer)
    assert outputs(plain)[0]["parts"] == [{"type": "text", "content": "plain"}]
    assert outputs(streamed)[0]["parts"] == [
        {"type": "tool_call", "id": "c9", "name": "weather", "arguments": '{"city": "Oslo"}'}
    ]
    assert outputs(streamed)[0]["finish_reason"] == "tool_calls"


def test_a_server_error_is_recorded_on_the_span_and_raised(tracer: OtelTracer) -> None:
    with (
        OpenAIServer([Reply(status=500, error="model overloaded")]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
        pytest.raises(openai.InternalServerError),
    ):
        client.chat.completions.create(model="m", messages=ASK)
    (span,) = llm_spans(tracer)
    assert span.status.status_code == "ERROR" and "model overloaded" in (span.status.description or "")


def test_calls_outside_a_trace_context_pass_through_unrecorded(tracer: OtelTracer) -> None:
    with (
        OpenAIServer(["hi"]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        answer = client.chat.completions.create(model="m", messages=ASK)
        assert server.requests[0]["messages"] == ASK
    assert answer.choices[0].message.content == "hi"
    assert tracer.stats.spans_received == 0


def test_teardown_restores_the_openai_client() -> None:
    from openai.resources.chat.completions import Completions

    before = Completions.create  # may already be wrapped by a tracer another test left initialised
    tracer = OtelTracer()
    tracer.init()
    assert is_instrumented() and hasattr(Completions.create, "__wrapped__")
    tracer.teardown()
    assert Completions.create is before
    if not is_instrumented():
        # openai's own ``create`` is decorated (it has ``__wrapped__`` too): check the code instead
        assert Completions.create.__code__.co_filename != openai_capture.__file__


def test_the_server_reports_an_exhausted_script() -> None:
    with (
        OpenAIServer(["only one"]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        client.chat.completions.create(model="m", messages=ASK)
        with pytest.raises(openai.InternalServerError, match="no scripted reply left"):
            client.chat.completions.create(model="m", messages=ASK)
    assert len(server.requests) == 2


def test_the_server_answers_from_a_callable() -> None:
    def answer(body: dict[str, Any]) -> str:
        return f"you said {body['messages'][-1]['content']}"

    with (
        OpenAIServer(answer) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
    assert out.choices[0].message.content == "you said ping"


def test_the_pytest_fixture_gives_a_running_server(agl_openai_server: OpenAIServer) -> None:
    with openai.OpenAI(base_url=agl_openai_server.base_url, api_key="k", max_retries=0) as client:
        echoed = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "echo me"}])
        agl_openai_server.add_reply("scripted")
        scripted = client.chat.completions.create(model="m", messages=ASK)
    assert echoed.choices[0].message.content == "echo me"
    assert scripted.choices[0].message.content == "scripted"
