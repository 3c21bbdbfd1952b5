"""Chat model runs of a real ``ChatOpenAI`` on the scripted server: spans, triplets, messages."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from lc_spans import captured, input_messages, output_parts, runs

from agentlightning_core import OtelTracer, TracerTraceToTriplet, TraceToMessages, emit_reward, semconv
from agentlightning_core.testing.openai_server import OpenAIServer, Reply
from agentlightning_langchain import (
    PARENT_RUN_ID,
    RUN_ID,
    AsyncLightningCallbackHandler,
    LightningCallbackHandler,
)

ASK = [SystemMessage("Be brief."), HumanMessage("Weather in Paris?")]
SUNNY = Reply(
    content="It is sunny.", prompt_tokens=6, completion_tokens=3, prompt_token_ids=[1, 2], token_ids=[7, 8]
)


def model(server: OpenAIServer, **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(model="small", base_url=server.base_url, api_key="k", max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_an_invoke_is_one_llm_call_with_the_token_ids_of_the_openai_capture(tracer: OtelTracer) -> None:
    handler = tracer.get_langchain_handler()
    assert isinstance(handler, LightningCallbackHandler) and handler.tracer is tracer
    with OpenAIServer([SUNNY]) as server, tracer.trace_context("agent"):
        answer = model(server, temperature=0.2).invoke(ASK, config={"callbacks": [handler]})
        emit_reward(1.0)
    assert answer.content == "It is sunny."
    spans = tracer.get_last_trace()
    (chat,) = runs(spans, "chat_model")
    a = chat.attributes
    assert chat.name == "chat small" and chat.kind == "CLIENT" and chat.parent_id == spans[-1].span_id
    assert a[semconv.GEN_AI_REQUEST_MODEL] == "small" and a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert input_messages(chat) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    assert output_parts(chat) == [{"type": "text", "content": "It is sunny."}]
    assert a[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-test-1" and a[
        semconv.GEN_AI_RESPONSE_FINISH_REASONS
    ] == ["stop"]
    assert (a[semconv.GEN_AI_USAGE_INPUT_TOKENS], a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (6, 3)
    assert a[semconv.LLM_STREAM] is False and RUN_ID in a
    (low,) = captured(spans)  # the same call seen by the openai capture (langchain-openai's raw response)
    assert low.attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-test-1"
    (triplet,) = TracerTraceToTriplet().adapt(spans)
    assert triplet.prompt["token_ids"] == [1, 2] and triplet.response["token_ids"] == [7, 8]
    (sample,) = TraceToMessages().adapt(spans)
    assert sample["messages"][-1] == {"role": "assistant", "content": "It is sunny."}


def test_without_the_openai_capture_the_handler_alone_gives_the_triplet() -> None:
    tracer = OtelTracer(instrument_openai=False)
    tracer.init()
    try:
        with OpenAIServer([SUNNY]) as server, tracer.trace_context("agent"):
            model(server).invoke(ASK, config={"callbacks": [LightningCallbackHandler()]})
            emit_reward(1.0)
    finally:
        tracer.teardown()
    (triplet,) = TracerTraceToTriplet().adapt(tracer.get_last_trace())
    assert triplet.response["message"]["content"] == "It is sunny." and triplet.response["token_ids"] is None


def test_a_sync_stream_records_the_whole_answer(tracer: OtelTracer) -> None:
    with OpenAIServer([SUNNY]) as server, tracer.trace_context("agent"):
        text = "".join(
            str(c.content)
            for c in model(server).stream(ASK, config={"callbacks": [LightningCallbackHandler()]})
        )
        emit_reward(1.0)
    assert text == "It is sunny."
    spans = tracer.get_last_trace()
    (chat,) = runs(spans, "chat_model")
    assert chat.attributes[semconv.LLM_STREAM] is True
    assert output_parts(chat) == [{"type": "text", "content": "It is sunny."}]
    (triplet,) = TracerTraceToTriplet().adapt(spans)
    assert triplet.response["token_ids"] == [7, 8]


@pytest.mark.anyio
async def test_async_invoke_and_stream_with_the_async_handler(tracer: OtelTracer) -> None:
    handler = AsyncLightningCallbackHandler(tracer)
    with OpenAIServer([SUNNY, "Rain later."]) as server:
        async with tracer.trace_context("agent"):
            first = await model(server).ainvoke(ASK, config={"callbacks": [handler]})
            chunks = [c async for c in model(server).astream(ASK, config={"callbacks": [handler]})]
            emit_reward(1.0)
    assert first.content == "It is sunny." and "".join(str(c.content) for c in chunks) == "Rain later."
    spans = tracer.get_last_trace()
    plain, streamed = runs(spans, "chat_model")
    assert plain.attributes[semconv.LLM_STREAM] is False and streamed.attributes[semconv.LLM_STREAM] is True
    assert output_parts(streamed) == [{"type": "text", "content": "Rain later."}]
    assert [t.response["message"]["content"] for t in TracerTraceToTriplet().adapt(spans)] == [
        "It is sunny.",
        "Rain later.",
    ]


def test_the_responses_api_call_is_linked_by_its_response_id(tracer: OtelTracer) -> None:
    with OpenAIServer([SUNNY]) as server, tracer.trace_context("agent"):
        answer = model(server, use_responses_api=True).invoke(
            ASK, config={"callbacks": [LightningCallbackHandler()]}
        )
        emit_reward(1.0)
    assert answer.text == "It is sunny."
    spans = tracer.get_last_trace()
    (chat,) = runs(spans, "chat_model")
    (low,) = captured(spans)
    assert (
        chat.attributes[semconv.GEN_AI_RESPONSE_ID]
        == low.attributes[semconv.GEN_AI_RESPONSE_ID]
        == "resp_test_1"
    )
    (triplet,) = TracerTraceToTriplet().adapt(spans)
    assert triplet.response["message"]["content"] == "It is sunny."


def test_a_failed_call_sets_the_error_status(tracer: OtelTracer) -> None:
    with (
        OpenAIServer([Reply(status=500, error="model overloaded")]) as server,
        tracer.trace_context("agent"),
        pytest.raises(Exception, match="model overloaded"),
    ):
        model(server).invoke(ASK, config={"callbacks": [LightningCallbackHandler()]})
    (chat,) = runs(tracer.get_last_trace(), "chat_model")
    assert chat.status.status_code == "ERROR" and "model overloaded" in (chat.status.description or "")
    assert chat.events and chat.events[0].name == "exception"


def test_runs_outside_a_trace_context_are_not_recorded(tracer: OtelTracer) -> None:
    handler = LightningCallbackHandler(tracer)
    with OpenAIServer(["hi"]) as server:
        assert model(server).invoke(ASK, config={"callbacks": [handler]}).content == "hi"
    assert tracer.stats.spans_received == 0 and not handler._runs


def test_the_emitted_spans_of_a_run_name_it(tracer: OtelTracer) -> None:
    """A span another instrumentation starts inside a run (here the openai capture) names the run."""
    with OpenAIServer([SUNNY]) as server, tracer.trace_context("agent"):
        chain = model(server).with_config(run_name="ask")
        from langchain_core.runnables import RunnableLambda

        RunnableLambda(lambda _: chain.invoke(ASK)).invoke(
            None, config={"callbacks": [LightningCallbackHandler()]}
        )
    spans = tracer.get_last_trace()
    (outer,) = [s for s in runs(spans, "chain")]
    (low,) = captured(spans)
    assert low.attributes[PARENT_RUN_ID] == outer.attributes[RUN_ID]
