"""The scripted server's ``/v1/responses`` as the real ``openai`` client parses it."""

from __future__ import annotations

import openai
import pytest

from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall

WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object"}}


def test_a_response_carries_text_function_calls_and_usage() -> None:
    replies = [
        Reply(content="Sunny.", prompt_tokens=5, completion_tokens=1),
        Reply(tool_calls=[ToolCall("weather", '{"city": "Paris"}', id="call_w")]),
    ]
    with (
        OpenAIServer(replies) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        text = client.responses.create(model="small", instructions="Be brief.", input="Weather in Paris?")
        call = client.responses.create(model="small", input="Weather?", tools=[WEATHER])  # type: ignore[list-item]
    assert text.id == "resp_test_1" and text.model == "small" and text.status == "completed"
    assert text.output_text == "Sunny."
    assert text.usage is not None and (text.usage.input_tokens, text.usage.output_tokens) == (5, 1)
    (item,) = call.output
    assert item.type == "function_call"
    assert (item.call_id, item.name, item.arguments) == ("call_w", "weather", '{"city": "Paris"}')
    assert server.requests[0]["instructions"] == "Be brief." and server.requests[1]["tools"] == [WEATHER]


def test_without_a_script_the_server_echoes_the_last_user_input() -> None:
    with (
        OpenAIServer() as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        plain = client.responses.create(model="m", input="ping")
        parts = client.responses.create(
            model="m",
            input=[
                {"role": "user", "content": "first"},
                {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
            ],
        )
    assert (plain.output_text, parts.output_text) == ("ping", "second")


def test_a_stream_sends_the_typed_events_in_order() -> None:
    reply = Reply(content="It is sunny.", tool_calls=[ToolCall("weather", '{"city": "Oslo"}', id="c1")])
    with (
        OpenAIServer([reply]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        events = list(client.responses.create(model="m", input="Weather?", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "It is sunny." and len(deltas) == 3
    arguments = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(arguments) == '{"city": "Oslo"}'
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "It is sunny." and final.output[1].type == "function_call"


def test_the_stream_helper_rebuilds_the_response_from_the_events() -> None:
    with (
        OpenAIServer([Reply(content="one two three")]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
        client.responses.stream(model="m", input="count") as stream,
    ):
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert texts == ["one ", "two ", "three"]
    assert final.output_text == "one two three" and final.status == "completed"


@pytest.mark.anyio
async def test_the_async_client_streams_and_reads_errors() -> None:
    with OpenAIServer(["async answer", Reply(status=503, error="busy")]) as server:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            stream = await client.responses.create(model="m", input="hi", stream=True)
            events = [e async for e in stream]
            with pytest.raises(openai.APIStatusError, match="busy"):
                await client.responses.create(model="m", input="hi")
    assert events[-1].response.output_text == "async answer"  # type: ignore[union-attr]


def test_a_length_cut_reply_is_an_incomplete_response() -> None:
    with (
        OpenAIServer([Reply(content="cut short", finish_reason="length"), "x"]) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        events = list(client.responses.create(model="m", input="go", stream=True))
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete" and last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
