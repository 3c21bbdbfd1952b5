"""Emitters record spans through the active tracer; rewards are validated at emit time."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator

import pytest

from agentlightning_core import semconv
from agentlightning_core.emitter import (
    emit_annotation,
    emit_exception,
    emit_message,
    emit_object,
    emit_reward,
    find_final_reward,
    find_reward_spans,
    get_reward_value,
    operation,
)
from agentlightning_core.spans import Span
from agentlightning_core.tracer.otel import OtelTracer


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    tracer = OtelTracer(instrument_openai=False)
    yield tracer
    tracer.teardown()


def by_name(tracer: OtelTracer, name: str) -> list[Span]:
    return [s for s in tracer.get_last_trace() if s.name == name]


@pytest.mark.parametrize("value", [0, 2, -5.5, 1e9, 0.25])
def test_any_finite_number_is_a_reward(tracer: OtelTracer, value: float) -> None:
    with tracer.trace_context("agent"):
        emit_reward(value)
    assert find_final_reward(tracer.get_last_trace()) == float(value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1.0", None, True, [1.0]])
def test_a_reward_that_is_not_a_finite_number_raises_with_the_value(tracer: OtelTracer, bad: object) -> None:
    with tracer.trace_context("agent"), pytest.raises(ValueError) as info:
        emit_reward(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)
    assert by_name(tracer, semconv.REWARD_SPAN) == []


def test_a_dict_reward_records_every_entry_and_the_primary_one(tracer: OtelTracer) -> None:
    with tracer.trace_context("agent"):
        emit_reward({"accuracy": 1.0, "format": 0.5}, primary_key="accuracy")
        emit_reward({"only": 3})
    first, second = find_reward_spans(tracer.get_last_trace())
    assert first.attributes[semconv.REWARD_PREFIX + "format"] == 0.5
    assert first.attributes[semconv.REWARD_PRIMARY_KEY] == "accuracy"
    assert get_reward_value(first) == 1.0 and get_reward_value(second) == 3.0
    assert find_final_reward(tracer.get_last_trace()) == 3.0


@pytest.mark.parametrize(
    ("reward", "primary", "message"),
    [
        ({"a": 1.0, "b": 2.0}, None, "needs primary_key"),
        ({"a": 1.0}, "b", "'b' is not in"),
        ({"a": math.nan}, "a", "Reward 'a' must be a finite number, got nan"),
        ({}, None, "at least one"),
        ({"value": 1.0}, None, "'value'"),
        (1.0, "a", "applies only to a dict"),
    ],
)
def test_bad_dict_rewards_are_rejected(reward: object, primary: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        emit_reward(reward, primary_key=primary)  # type: ignore[arg-type]


def test_no_reward_gives_none(tracer: OtelTracer) -> None:
    with tracer.trace_context("agent"), tracer.create_span("work"):
        pass
    assert find_final_reward(tracer.get_last_trace()) is None
    assert get_reward_value(by_name(tracer, "work")[0]) is None


def test_messages_objects_exceptions_and_annotations_are_recorded(tracer: OtelTracer) -> None:
    with tracer.trace_context("agent"):
        emit_message("retrieved 3 documents", {"step": 2})
        emit_object({"plan": ["a", "b"]})
        try:
            raise RuntimeError("tool crashed")
        except RuntimeError as exc:
            emit_exception(exc)
        emit_annotation({"split": "train", "tags": ["x", "y"], "nested": {"k": 1}})
    (message,) = by_name(tracer, semconv.MESSAGE_SPAN)
    assert (
        message.attributes[semconv.MESSAGE_BODY] == "retrieved 3 documents"
        and message.attributes["step"] == 2
    )
    (obj,) = by_name(tracer, semconv.OBJECT_SPAN)
    assert json.loads(obj.attributes[semconv.OBJECT_JSON]) == {"plan": ["a", "b"]}
    (exc_span,) = by_name(tracer, semconv.EXCEPTION_SPAN)
    assert exc_span.attributes[semconv.EXCEPTION_TYPE] == "RuntimeError"
    assert "tool crashed" in exc_span.attributes[semconv.EXCEPTION_STACKTRACE]
    (note,) = by_name(tracer, semconv.ANNOTATION_SPAN)
    assert note.attributes[semconv.ANNOTATION_PREFIX + "tags"] == ["x", "y"]
    assert json.loads(note.attributes[semconv.ANNOTATION_PREFIX + "nested"]) == {"k": 1}


def test_emitters_reject_bad_arguments_with_the_value() -> None:
    with pytest.raises(TypeError, match="42"):
        emit_message(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON-serializable"):
        emit_object({1, 2})
    with pytest.raises(TypeError, match="needs an exception"):
        emit_exception("oops")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty mapping"):
        emit_annotation({})


def test_operation_as_decorator_records_inputs_and_output(tracer: OtelTracer) -> None:
    @operation
    def add(a: int, b: int) -> int:
        return a + b

    @operation("lookup", record_io=False)
    def lookup(key: str) -> str:
        return key.upper()

    with tracer.trace_context("agent"):
        assert add(2, b=3) == 5
        assert lookup("k") == "K"
    (span,) = [
        s for s in tracer.get_last_trace() if s.attributes.get(semconv.OPERATION_NAME, "").endswith("add")
    ]
    assert json.loads(span.attributes[semconv.OPERATION_INPUT]) == {"a": 2, "b": 3}
    assert span.attributes[semconv.OPERATION_OUTPUT] == 5
    (plain,) = by_name(tracer, "lookup")
    assert (
        semconv.OPERATION_INPUT not in plain.attributes and semconv.OPERATION_OUTPUT not in plain.attributes
    )


@pytest.mark.anyio
async def test_operation_decorates_async_functions_and_records_errors(tracer: OtelTracer) -> None:
    @operation("fetch")
    async def fetch(url: str) -> str:
        raise ConnectionError(f"cannot reach {url}")

    with pytest.raises(ConnectionError):
        async with tracer.trace_context("agent"):
            await fetch("http://127.0.0.1:1")
    (span,) = by_name(tracer, "fetch")
    assert span.status.status_code == "ERROR"
    assert json.loads(span.attributes[semconv.OPERATION_INPUT]) == {"url": "http://127.0.0.1:1"}


def test_operation_as_context_manager_nests_spans(tracer: OtelTracer) -> None:
    with tracer.trace_context("agent"), operation("plan", attributes={"depth": 1}) as span:
        span.set_attribute("result", "ok")
        emit_reward(1.0)
    (plan,) = by_name(tracer, "plan")
    (reward,) = by_name(tracer, semconv.REWARD_SPAN)
    assert plan.attributes["depth"] == 1 and plan.attributes["result"] == "ok"
    assert reward.parent_id == plan.span_id
    with pytest.raises(TypeError, match="needs a name"), operation():
        pass


def test_emitting_outside_a_trace_context_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        emit_message("lost?")
    assert "outside any trace context" in caplog.text


def test_one_operation_object_can_be_nested(tracer: OtelTracer) -> None:
    step = operation("step")
    with tracer.trace_context("agent"), step as outer:
        outer.set_attribute("level", "outer")
        with step as inner:
            inner.set_attribute("level", "inner")
    spans = {s.attributes["level"]: s for s in by_name(tracer, "step")}
    assert spans["inner"].parent_id == spans["outer"].span_id
    assert all(s.end_time is not None for s in spans.values())


@pytest.mark.anyio
async def test_one_operation_object_is_safe_across_concurrent_tasks(tracer: OtelTracer) -> None:
    import anyio

    step = operation("step")
    entered = [anyio.Event(), anyio.Event()]

    async def work(index: int) -> None:
        with step as span:
            span.set_attribute("task", index)
            entered[index].set()
            await entered[1 - index].wait()  # both spans open at once
            emit_message(f"inside {index}")

    async with tracer.trace_context("agent"):
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(work, 0)
                tg.start_soon(work, 1)
    steps = {s.attributes["task"]: s for s in by_name(tracer, "step")}
    assert len(steps) == 2 and all(s.end_time is not None for s in steps.values())
    messages = {s.span_id: s for s in tracer.get_last_trace() if s.name == semconv.MESSAGE_SPAN}
    parents = sorted(steps[i].span_id for i in (0, 1))
    assert sorted(m.parent_id for m in messages.values()) == parents  # type: ignore[type-var]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "1.0"])
def test_a_non_finite_or_non_numeric_reward_value_reads_as_no_reward(value: object) -> None:
    from agentlightning_core.testing.adapter import span

    recorded = span(1, semconv.REWARD_SPAN, attributes={semconv.REWARD_VALUE: value})
    assert get_reward_value(recorded) is None
    assert find_final_reward([recorded]) is None


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"agentops.task.output": json.dumps({"type": "reward", "value": 0.5})}, 0.5),
        ({"agentops.entity.output": json.dumps({"type": "reward", "value": 3})}, 3.0),
        ({"agentops.task.output": json.dumps({"type": "answer", "value": 0.5})}, None),
        ({"agentops.task.output": json.dumps({"type": "reward", "value": "high"})}, None),
        ({"agentops.task.output": '{"type": "reward", broken'}, None),
        ({"agentops.task.output": "0.5"}, None),
    ],
)
def test_an_agentops_operation_returning_a_legacy_reward_dict_is_a_reward(
    attributes: dict[str, object], expected: float | None
) -> None:
    from agentlightning_core.testing.adapter import span

    recorded = span(1, "grade.task", attributes=attributes)
    assert get_reward_value(recorded) == expected
    assert find_final_reward([span(0, "agent"), recorded]) == expected
