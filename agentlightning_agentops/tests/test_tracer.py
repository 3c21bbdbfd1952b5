"""AgentOpsTracer: its own provider, AgentOps' entity spans in the store, rewards, clear errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import agentops
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from agentlightning_agentops import (
    AgentOpsTracer,
    AgentOpsVersionError,
    InstrumentorLoadError,
    check_agentops_version,
)
from agentlightning_agentops.tracer import _AgentNames
from agentlightning_core import InMemoryLightningStore, emit_reward, find_final_reward, resolve_component
from agentlightning_core.tracer.processor import LightningSpanProcessor

pytestmark = pytest.mark.anyio


@pytest.fixture
def tracer() -> Iterator[AgentOpsTracer]:
    tracer = AgentOpsTracer()
    tracer.init()
    yield tracer
    tracer.teardown()


@agentops.tool
def lookup(city: str) -> str:
    return f"{city}: sunny"


@agentops.operation
def score(answer: str) -> dict[str, Any]:
    return {"type": "reward", "value": 0.75 if "sunny" in answer else 0.0}


@agentops.agent(name="weather-agent")
def weather_agent(city: str) -> str:
    return lookup(city)


@agentops.workflow
def plan(city: str) -> dict[str, Any]:
    return score(weather_agent(city))


def test_registered_by_name() -> None:
    tracer = resolve_component("tracer", "agentops")
    assert isinstance(tracer, AgentOpsTracer)
    tracer.teardown()


def test_the_provider_is_the_tracers_own_with_no_exporter(tracer: AgentOpsTracer) -> None:
    global_provider = otel_trace.get_tracer_provider()
    with tracer.trace_context("agent"):
        plan("Paris")
    assert otel_trace.get_tracer_provider() is global_provider
    assert global_provider is not tracer.provider
    processors = tracer.provider._active_span_processor._span_processors
    assert {type(p) for p in processors} == {LightningSpanProcessor, _AgentNames}


async def test_entity_spans_keep_names_kinds_and_land_in_the_store(tracer: AgentOpsTracer) -> None:
    async with InMemoryLightningStore() as store:
        attempted = await store.start_rollout(input="Paris")
        tracer.init_worker("worker-1", store)
        async with tracer.trace_context(
            "agent", rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
        ):
            plan("Paris")
        stored = (await store.query_spans(attempted.rollout_id)).items
        tracer.teardown_worker("worker-1")
    by_name = {s.name: s for s in stored}
    kinds = {name: by_name[name].attributes["agentops.span.kind"] for name in by_name if name != "agent"}
    assert kinds == {
        "plan.workflow": "workflow",
        "weather-agent.agent": "agent",
        "lookup.tool": "tool",
        "score.task": "task",
    }
    # nested as called, under the trace's root span
    parent = {s.name: s.parent_id for s in stored}
    span_id = {s.name: s.span_id for s in stored}
    assert parent["plan.workflow"] == span_id["agent"]
    assert parent["weather-agent.agent"] == span_id["plan.workflow"]
    assert parent["lookup.tool"] == span_id["weather-agent.agent"]
    assert parent["score.task"] == span_id["plan.workflow"]
    assert by_name["weather-agent.agent"].attributes["gen_ai.agent.name"] == "weather-agent"
    assert by_name["lookup.tool"].attributes["agentops.tool.output"] == "Paris: sunny"
    assert {(s.rollout_id, s.attempt_id) for s in stored} == {(attempted.rollout_id, attempted.attempt_id)}
    # the @operation's {"type": "reward", "value": x} is the reward (legacy form)
    assert find_final_reward(stored) == 0.75


def test_emit_reward_inside_agentops_decorated_code(tracer: AgentOpsTracer) -> None:
    @agentops.operation
    def judge() -> None:
        emit_reward({"accuracy": 1.0, "cost": -0.5}, primary_key="accuracy")

    with tracer.trace_context("agent"):
        judge()
    spans = tracer.get_last_trace()
    reward = next(s for s in spans if s.name == "agentlightning.reward")
    assert reward.parent_id == next(s.span_id for s in spans if s.name == "judge.task")
    assert find_final_reward(spans) == 1.0


async def test_every_span_of_a_long_trace_reaches_the_store(tracer: AgentOpsTracer) -> None:
    async with InMemoryLightningStore() as store:
        attempted = await store.start_rollout(input="many")
        async with tracer.trace_context(
            "agent", store=store, rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
        ) as trace:
            for i in range(2000):
                lookup(f"city-{i}")
        stored = (await store.query_spans(attempted.rollout_id, limit=-1)).items
    assert len(trace.spans) == len(stored) == 2001
    assert tracer.stats.spans_failed == tracer.stats.spans_dropped_buffer_full == 0


def test_decorators_record_nothing_outside_the_tracers_lifetime() -> None:
    tracer = AgentOpsTracer()
    tracer.init()
    tracer.teardown()
    from agentops.sdk.core import tracer as core

    assert not core.initialized and core.provider is None
    assert lookup("Oslo") == "Oslo: sunny"  # runs undecorated, nothing recorded anywhere


def test_one_agentops_tracer_per_process(tracer: AgentOpsTracer) -> None:
    other = AgentOpsTracer()
    with pytest.raises(RuntimeError, match="Another AgentOpsTracer is initialised"):
        other.init()
    tracer.teardown()
    other.init()  # free once the first one is torn down
    other.teardown()


# --- compatibility checks --------------------------------------------------------------


def test_the_installed_agentops_is_the_tested_release() -> None:
    assert check_agentops_version() == "0.4.21"


@pytest.mark.parametrize("installed", ["0.4.20", "0.4.22", "0.5.0"])
def test_an_untested_agentops_release_fails_naming_both_versions(installed: str) -> None:
    with pytest.raises(AgentOpsVersionError) as caught:
        check_agentops_version(installed)
    message = str(caught.value)
    assert f"agentops {installed} is installed" in message
    assert "tested with agentops 0.4.21" in message
    assert "pip install 'agentops==0.4.21'" in message


def test_an_unknown_instrumentor_name_lists_the_available_ones() -> None:
    tracer = AgentOpsTracer(instrument=["opnai"])
    with pytest.raises(InstrumentorLoadError, match=r"'opnai'.*Available: .*anthropic.*openai"):
        tracer.init()
    tracer.teardown()


def _a_library_not_installed() -> tuple[str, str]:
    """An instrumentor of the catalogue whose library is not installed here, and its pip line."""
    import importlib.util

    from agentlightning_agentops._instrumentors import catalogue

    for name, config in catalogue().items():
        package = config.get("package_name") or config["module_name"].rsplit(".", 1)[-1]
        if importlib.util.find_spec(name) is None:
            return name, f"pip install '{package}>={config['min_version']}'"
    raise AssertionError("every library AgentOps instruments is installed: the test needs one missing")


def test_an_instrumentor_of_a_missing_library_says_what_to_install() -> None:
    missing, pip_line = _a_library_not_installed()
    tracer = AgentOpsTracer(instrument=["openai", missing])
    try:
        with pytest.raises(InstrumentorLoadError, match=rf"'{missing}'.*{re.escape(pip_line)}"):
            tracer.init()
        # the instrumentors attached before the failure are detached again
        from agentops.instrumentation.providers.openai import OpenaiInstrumentor

        assert not OpenaiInstrumentor().is_instrumented_by_opentelemetry
    finally:
        tracer.teardown()


def test_an_instrumentor_that_fails_to_import_is_named() -> None:
    tracer = AgentOpsTracer(instrument=["agentlightning_missing_module:SomeInstrumentor"])
    with pytest.raises(InstrumentorLoadError, match="'agentlightning_missing_module:SomeInstrumentor'"):
        tracer.init()
    tracer.teardown()


class _CrashingInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> list[str]:
        return []

    def _instrument(self, **kwargs: Any) -> None:
        raise AttributeError("module 'somelib' has no attribute 'Client'")

    def _uninstrument(self, **kwargs: Any) -> None:
        return None


def test_an_instrumentor_that_crashes_while_attaching_is_named() -> None:
    tracer = AgentOpsTracer(instrument=[_CrashingInstrumentor])
    with pytest.raises(InstrumentorLoadError) as caught:
        tracer.init()
    assert "_CrashingInstrumentor" in str(caught.value)
    assert "AttributeError: module 'somelib' has no attribute 'Client'" in str(caught.value)
    tracer.teardown()


def test_auto_attaches_the_instrumentors_of_installed_libraries(tracer: AgentOpsTracer) -> None:
    import importlib.util

    assert "openai" in tracer.instrumentors
    assert all(importlib.util.find_spec(name) is not None for name in tracer.instrumentors)
    assert tracer.failed_instrumentors == {}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"export_to_agentops": True}, "needs api_key"),
        ({"set_global_provider": True}, "keeps its provider to itself"),
        ({"instrument": "openai"}, "'auto' or a list"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AgentOpsTracer(**options)


def test_agl_plugins_shows_the_agentops_version() -> None:
    from agentlightning_core.cli.plugins import plugins_report

    (entry,) = [e for e in plugins_report(False) if e["distribution"] == "agentlightning-agentops"]
    assert entry["components"] == {"tracers": ["agentops"]}
    assert entry["requires"]["agentops"] == "0.4.21"
