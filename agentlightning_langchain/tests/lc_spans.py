"""Span helpers of the LangChain tests."""

from __future__ import annotations

import json
from typing import Any

from agentlightning_core import Span, semconv
from agentlightning_langchain import RUN_ID, RUN_TYPE


def runs(spans: list[Span], run_type: str) -> list[Span]:
    """The handler's spans of one run type, in start order."""
    return sorted(
        (s for s in spans if s.attributes.get(RUN_TYPE) == run_type), key=lambda s: s.start_time or 0.0
    )


def captured(spans: list[Span]) -> list[Span]:
    """The openai capture's LLM spans (not the handler's)."""
    return [s for s in spans if s.name.startswith("chat") and RUN_ID not in s.attributes]


def output_parts(span: Span) -> list[dict[str, Any]]:
    (message,) = json.loads(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    return message["parts"]  # type: ignore[no-any-return]


def input_messages(span: Span) -> list[dict[str, Any]]:
    return json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES])  # type: ignore[no-any-return]
