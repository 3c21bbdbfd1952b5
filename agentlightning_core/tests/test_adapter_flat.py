"""Adapters read both message forms from real OpenTelemetry SDK spans: the
``gen_ai.input.messages`` JSON our tracer writes and the flattened ``gen_ai.prompt.N.*`` /
``gen_ai.completion.N.*`` / ``llm.request.functions.N.*`` attributes of OpenLLMetry and AgentOps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentlightning_core import semconv
from agentlightning_core.adapter.messages import TraceToMessages
from agentlightning_core.adapter.triplet import LlmProxyTraceToTriplet, TracerTraceToTriplet
from agentlightning_core.spans import Span
from agentlightning_core.tracer.genai import to_semconv_message, to_semconv_messages

TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "Forecast", "parameters": {"type": "object"}},
}
PROMPT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]
ANSWER = {"role": "assistant", "content": "Sunny in Paris."}
TOOL_ANSWER = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}
    ],
}


def openllmetry_attributes(prompt: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any]:
    """The attributes OpenLLMetry's (and AgentOps') OpenAI instrumentation sets on ``openai.chat``."""
    out: dict[str, Any] = {"llm.request.type": "chat", "gen_ai.request.model": "m"}
    for i, msg in enumerate(prompt):
        out[f"gen_ai.prompt.{i}.role"] = msg["role"]
        if msg.get("content"):
            out[f"gen_ai.prompt.{i}.content"] = msg["content"]
        if msg.get("tool_call_id"):
            out[f"gen_ai.prompt.{i}.tool_call_id"] = msg["tool_call_id"]
        for j, call in enumerate(msg.get("tool_calls") or ()):
            out[f"gen_ai.prompt.{i}.tool_calls.{j}.id"] = call["id"]
            out[f"gen_ai.prompt.{i}.tool_calls.{j}.name"] = call["function"]["name"]
            out[f"gen_ai.prompt.{i}.tool_calls.{j}.arguments"] = call["function"]["arguments"]
    out["gen_ai.completion.0.finish_reason"] = "tool_calls" if answer.get("tool_calls") else "stop"
    out["gen_ai.completion.0.role"] = answer["role"]
    if answer.get("content") is not None:
        out["gen_ai.completion.0.content"] = answer["content"]
    for j, call in enumerate(answer.get("tool_calls") or ()):
        out[f"gen_ai.completion.0.tool_calls.{j}.id"] = call["id"]
        out[f"gen_ai.completion.0.tool_calls.{j}.name"] = call["function"]["name"]
        out[f"gen_ai.completion.0.tool_calls.{j}.arguments"] = call["function"]["arguments"]
    out["llm.request.functions.0.name"] = TOOL["function"]["name"]
    out["llm.request.functions.0.description"] = TOOL["function"]["description"]
    out["llm.request.functions.0.parameters"] = json.dumps(TOOL["function"]["parameters"])
    return out


def json_attributes(prompt: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any]:
    """The attributes our tracer's openai capture sets on ``chat {model}``."""
    return {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_REQUEST_MODEL: "m",
        semconv.GEN_AI_INPUT_MESSAGES: json.dumps(to_semconv_messages(prompt)),
        semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps([to_semconv_message(answer, finish_reason="stop")]),
        semconv.GEN_AI_TOOL_DEFINITIONS: json.dumps([TOOL]),
    }


def agentops_attributes(prompt: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any]:
    """AgentOps' openai instrumentor: OpenLLMetry's messages, the tools under ``gen_ai.request.functions``."""
    return {
        key.replace("llm.request.functions", "gen_ai.request.functions"): value
        for key, value in openllmetry_attributes(prompt, answer).items()
    }


FORMS = {
    "tracer-json": ("chat m", json_attributes),
    "openllmetry": ("openai.chat", openllmetry_attributes),
    "agentops": ("openai.chat.completion", agentops_attributes),
}


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    yield provider, exp
    provider.shutdown()


def record(exporter: tuple[TracerProvider, InMemorySpanExporter], form: str) -> list[Span]:
    """Two LLM calls under an agent span, then a reward, recorded by the OpenTelemetry SDK."""
    provider, exp = exporter
    name, attributes = FORMS[form]
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("agent"):
        with tracer.start_as_current_span(name, attributes=attributes(PROMPT[:2], TOOL_ANSWER)):
            pass
        with tracer.start_as_current_span(name, attributes=attributes(PROMPT, ANSWER)):
            pass
        with tracer.start_as_current_span(semconv.REWARD_SPAN, attributes={semconv.REWARD_VALUE: 0.5}):
            pass
    return [
        Span.from_opentelemetry(s, rollout_id="ro", attempt_id="at", sequence_id=i + 1)
        for i, s in enumerate(sorted(exp.get_finished_spans(), key=lambda s: s.start_time or 0))
    ]


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("adapter", [TracerTraceToTriplet, LlmProxyTraceToTriplet])
def test_triplet_adapters_read_each_form(
    exporter: tuple[TracerProvider, InMemorySpanExporter], form: str, adapter: Any
) -> None:
    first, second = adapter().adapt(record(exporter, form))
    assert first.prompt["messages"] == PROMPT[:2]
    assert first.response["message"]["tool_calls"] == TOOL_ANSWER["tool_calls"]
    assert first.prompt["tools"] == [TOOL]
    assert second.prompt["messages"] == PROMPT
    assert second.response["message"] == ANSWER
    assert (first.reward, second.reward) == (None, 0.5)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_trace_to_messages_reads_each_form(
    exporter: tuple[TracerProvider, InMemorySpanExporter], form: str
) -> None:
    first, second = TraceToMessages().adapt(record(exporter, form))
    assert first == {"messages": [*PROMPT[:2], TOOL_ANSWER], "tools": [TOOL]}
    assert second == {"messages": [*PROMPT, ANSWER], "tools": [TOOL]}


def test_flattened_list_content_and_refusal(exporter: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exp = exporter
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "http://x/a.png"}}]
    attributes = {
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": json.dumps(parts),  # OpenLLMetry writes list content as JSON
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.refusal": "I can't help with that.",
    }
    with provider.get_tracer("t").start_as_current_span("openai.chat", attributes=attributes):
        pass
    (otel,) = exp.get_finished_spans()
    span = Span.from_opentelemetry(otel, rollout_id="ro", attempt_id="at", sequence_id=1)
    (triplet,) = TracerTraceToTriplet(require_reward=False).adapt([span])
    assert triplet.prompt["messages"] == [{"role": "user", "content": parts}]
    assert triplet.response["message"] == {"role": "assistant", "content": "I can't help with that."}
