"""Every way the ``openai`` client makes an LLM call is recorded: raw and streaming responses,
the ``parse``/``stream`` helpers and the Responses API, sync and async, through the real client."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import openai
import pydantic
import pytest

from agentlightning_core import semconv
from agentlightning_core.spans import Span
from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall
from agentlightning_core.tracer.otel import OtelTracer

ASK = [{"role": "user", "content": "Weather in Paris?"}]
REPLY = Reply(
    content="It is sunny.", prompt_tokens=4, completion_tokens=3, prompt_token_ids=[1, 2], token_ids=[7, 8]
)
TEXT = [
    {"role": "assistant", "parts": [{"type": "text", "content": "It is sunny."}], "finish_reason": "stop"}
]


class Weather(pydantic.BaseModel):
    city: str


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    tracer = OtelTracer()
    tracer.init()
    yield tracer
    tracer.teardown()


def only_llm_span(tracer: OtelTracer) -> Span:
    (span,) = [
        s for s in tracer.get_last_trace() if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"
    ]
    assert span.end_time is not None
    return span


def outputs(span: Span) -> list[dict[str, Any]]:
    return json.loads(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])  # type: ignore[no-any-return]


def inputs(span: Span) -> list[dict[str, Any]]:
    return json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES])  # type: ignore[no-any-return]


def chunks_text(stream: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


SYNC_CHAT: dict[str, Callable[[openai.OpenAI], str]] = {
    "with_raw_response": lambda c: (
        c.chat.completions.with_raw_response.create(model="m", messages=ASK)  # type: ignore[arg-type]
        .parse()
        .choices[0]
        .message.content
        or ""
    ),
    "with_raw_response stream": lambda c: chunks_text(
        c.chat.completions.with_raw_response.create(model="m", messages=ASK, stream=True).parse()  # type: ignore[arg-type]
    ),
    "with_streaming_response": lambda c: _streaming_response_text(c),
    "with_streaming_response stream": lambda c: _streaming_response_stream_text(c),
    "stream helper": lambda c: _stream_helper_text(c),
}


def _streaming_response_text(client: openai.OpenAI) -> str:
    with client.chat.completions.with_streaming_response.create(model="m", messages=ASK) as raw:  # type: ignore[arg-type]
        return raw.parse().choices[0].message.content or ""


def _streaming_response_stream_text(client: openai.OpenAI) -> str:
    with client.chat.completions.with_streaming_response.create(model="m", messages=ASK, stream=True) as raw:  # type: ignore[arg-type]
        return chunks_text(raw.parse())


def _stream_helper_text(client: openai.OpenAI) -> str:
    with client.chat.completions.stream(model="m", messages=ASK) as stream:  # type: ignore[arg-type]
        return stream.get_final_completion().choices[0].message.content or ""


@pytest.mark.parametrize("path", list(SYNC_CHAT))
def test_sync_chat_paths_record_the_response_and_token_ids(tracer: OtelTracer, path: str) -> None:
    with (
        OpenAIServer([REPLY]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        text = SYNC_CHAT[path](client)
    assert text == "It is sunny."
    span = only_llm_span(tracer)
    assert outputs(span) == TEXT
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-test-1"
    assert span.attributes[semconv.LLM_PROMPT_TOKEN_IDS] == [1, 2]
    assert span.attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == [7, 8]


def test_a_streaming_response_closed_unparsed_still_records_the_response(tracer: OtelTracer) -> None:
    with (
        OpenAIServer([REPLY]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
        client.chat.completions.with_streaming_response.create(model="m", messages=ASK) as raw,  # type: ignore[arg-type]
    ):
        assert raw.status_code == 200
    assert outputs(only_llm_span(tracer)) == TEXT


def test_the_parse_helper_records_structured_output(tracer: OtelTracer) -> None:
    with (
        OpenAIServer(['{"city": "Paris"}', '{"city": "Oslo"}']) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        parsed = client.chat.completions.parse(model="m", messages=ASK, response_format=Weather)  # type: ignore[arg-type]
        raw = client.chat.completions.with_raw_response.parse(
            model="m", messages=ASK, response_format=Weather
        )  # type: ignore[arg-type]
    assert parsed.choices[0].message.parsed == Weather(city="Paris")
    assert raw.parse().choices[0].message.parsed == Weather(city="Oslo")
    spans = [s for s in tracer.get_last_trace() if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]
    assert [outputs(s)[0]["parts"][0]["content"] for s in spans] == ['{"city": "Paris"}', '{"city": "Oslo"}']


AsyncPath = Callable[[openai.AsyncOpenAI], Awaitable[str]]


async def _async_raw(c: openai.AsyncOpenAI) -> str:
    raw = await c.chat.completions.with_raw_response.create(model="m", messages=ASK)  # type: ignore[arg-type]
    return raw.parse().choices[0].message.content or ""


async def _async_raw_stream(c: openai.AsyncOpenAI) -> str:
    raw = await c.chat.completions.with_raw_response.create(model="m", messages=ASK, stream=True)  # type: ignore[arg-type]
    return "".join([ch.choices[0].delta.content or "" async for ch in raw.parse() if ch.choices])


async def _async_streaming_response(c: openai.AsyncOpenAI) -> str:
    async with c.chat.completions.with_streaming_response.create(model="m", messages=ASK) as raw:  # type: ignore[arg-type]
        return (await raw.parse()).choices[0].message.content or ""


async def _async_parse(c: openai.AsyncOpenAI) -> str:
    out = await c.chat.completions.parse(model="m", messages=ASK)  # type: ignore[arg-type]
    return out.choices[0].message.content or ""


async def _async_stream_helper(c: openai.AsyncOpenAI) -> str:
    async with c.chat.completions.stream(model="m", messages=ASK) as stream:  # type: ignore[arg-type]
        return (await stream.get_final_completion()).choices[0].message.content or ""


ASYNC_CHAT: dict[str, AsyncPath] = {
    "with_raw_response": _async_raw,
    "with_raw_response stream": _async_raw_stream,
    "with_streaming_response": _async_streaming_response,
    "parse": _async_parse,
    "stream helper": _async_stream_helper,
}


@pytest.mark.anyio
@pytest.mark.parametrize("path", list(ASYNC_CHAT))
async def test_async_chat_paths_record_the_response(tracer: OtelTracer, path: str) -> None:
    with OpenAIServer([REPLY]) as server:
        async with (
            openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
            tracer.trace_context("agent"),
        ):
            text = await ASYNC_CHAT[path](client)
    assert text == "It is sunny."
    span = only_llm_span(tracer)
    assert outputs(span) == TEXT and span.attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == [7, 8]


# --- the Responses API -----------------------------------------------------------------------

TOOL = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
HISTORY: list[Any] = [
    {"role": "user", "content": "Weather in Paris?"},
    {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city": "Paris"}'},
    {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
]
HISTORY_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "c1", "name": "weather", "arguments": '{"city": "Paris"}'}],
    },
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "sunny"}]},
]


def _responses_text(client: openai.OpenAI) -> str:
    return client.responses.create(
        model="m", instructions="Be brief.", input=HISTORY, tools=[TOOL]
    ).output_text  # type: ignore[list-item]


def _responses_stream(client: openai.OpenAI) -> str:
    events = client.responses.create(
        model="m", instructions="Be brief.", input=HISTORY, tools=[TOOL], stream=True
    )  # type: ignore[list-item]
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def _responses_stream_helper(client: openai.OpenAI) -> str:
    with client.responses.stream(model="m", instructions="Be brief.", input=HISTORY, tools=[TOOL]) as stream:  # type: ignore[list-item]
        return stream.get_final_response().output_text


def _responses_raw(client: openai.OpenAI) -> str:
    raw = client.responses.with_raw_response.create(
        model="m", instructions="Be brief.", input=HISTORY, tools=[TOOL]
    )  # type: ignore[list-item]
    return raw.parse().output_text


def _responses_parse(client: openai.OpenAI) -> str:
    return client.responses.parse(
        model="m", instructions="Be brief.", input=HISTORY, tools=[TOOL]
    ).output_text  # type: ignore[list-item]


SYNC_RESPONSES = {
    "create": _responses_text,
    "stream": _responses_stream,
    "stream helper": _responses_stream_helper,
    "with_raw_response": _responses_raw,
    "parse": _responses_parse,
}


@pytest.mark.parametrize("path", list(SYNC_RESPONSES))
def test_responses_api_paths_record_input_items_output_and_usage(tracer: OtelTracer, path: str) -> None:
    reply = Reply(content="It is sunny.", prompt_tokens=9, completion_tokens=3)
    with (
        OpenAIServer([reply]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
    ):
        text = SYNC_RESPONSES[path](client)
    assert text == "It is sunny."
    span = only_llm_span(tracer)
    a = span.attributes
    assert span.name == "chat m" and a[semconv.GEN_AI_RESPONSE_ID] == "resp_test_1"
    assert inputs(span) == HISTORY_MESSAGES
    assert outputs(span) == TEXT
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 9 and a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert json.loads(a[semconv.GEN_AI_TOOL_DEFINITIONS]) == [TOOL]


@pytest.mark.anyio
async def test_async_responses_record_function_calls_streamed_and_not(tracer: OtelTracer) -> None:
    call = Reply(tool_calls=[ToolCall("weather", '{"city": "Oslo"}', id="c2")])
    with OpenAIServer([call, call, "done"]) as server:
        async with (
            openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
            tracer.trace_context("agent"),
        ):
            plain = await client.responses.create(model="m", input="Weather in Oslo?", tools=[TOOL])  # type: ignore[list-item]
            stream = await client.responses.create(model="m", input="Weather in Oslo?", stream=True)
            events = [e async for e in stream]
            async with client.responses.stream(model="m", input="thanks") as helper:
                final = await helper.get_final_response()
    assert plain.output[0].type == "function_call" and events and final.output_text == "done"
    spans = [s for s in tracer.get_last_trace() if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]
    expected = {"type": "tool_call", "id": "c2", "name": "weather", "arguments": '{"city": "Oslo"}'}
    for span in spans[:2]:
        (message,) = outputs(span)
        assert message["parts"] == [expected] and message["finish_reason"] == "tool_calls"
    assert outputs(spans[2])[0]["parts"] == [{"type": "text", "content": "done"}]
    assert inputs(spans[0]) == [{"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]}]


def test_a_failed_responses_call_sets_the_error_status(tracer: OtelTracer) -> None:
    with (
        OpenAIServer([Reply(status=500, error="model overloaded")]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        tracer.trace_context("agent"),
        pytest.raises(openai.InternalServerError),
    ):
        client.responses.create(model="m", input="hi")
    span = only_llm_span(tracer)
    assert span.status.status_code == "ERROR" and "model overloaded" in (span.status.description or "")
