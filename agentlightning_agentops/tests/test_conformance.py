"""The core's tracer conformance suite, unchanged, against the agentops tracer."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from agentlightning_agentops import AgentOpsTracer
from agentlightning_core.testing.tracer import TracerConformance
from agentlightning_core.tracer.base import Tracer


class TestAgentOpsTracer(TracerConformance):
    """Defaults: AgentOps' instrumentors record LLM calls as ``openai.chat.completion`` spans
    (checked in test_llm_calls.py), not as the core's ``chat {model}`` spans."""

    captures_openai = False

    @pytest.fixture
    def tracer_factory(self) -> Callable[[], Tracer]:
        return AgentOpsTracer


class TestAgentOpsTracerWithCoreOpenAICapture(TracerConformance):
    """AgentOps' decorators with the core's capture of the ``openai`` client instead of AgentOps' own."""

    captures_openai = True

    @pytest.fixture
    def tracer_factory(self) -> Callable[[], Tracer]:
        return partial(AgentOpsTracer, instrument=[], instrument_openai=True)
