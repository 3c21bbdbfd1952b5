"""Core data types: lossless JSON round trips (property-tested) and validation errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentlightning_core import (
    LLM,
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    PromptTemplate,
    ProxyLLM,
    ResourcesUpdate,
    Rollout,
    RolloutConfig,
    RolloutStatus,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
    Triplet,
    Worker,
    WorkerStatus,
)

ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
finite = st.floats(allow_nan=False, allow_infinity=False)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
json_dicts = st.dictionaries(text, json_values, max_size=4)
attr_values = (
    st.booleans()
    | st.integers(-(2**53), 2**53)
    | finite
    | text
    | st.lists(st.integers(-1000, 1000), max_size=4)
    | st.lists(text, max_size=3)
)
attributes = st.dictionaries(text, attr_values, max_size=5)
positive = st.none() | st.floats(min_value=0.001, max_value=1e6)

configs = st.builds(
    RolloutConfig,
    timeout_seconds=positive,
    unresponsive_seconds=positive,
    max_attempts=st.integers(1, 10),
    retry_condition=st.lists(st.sampled_from(list(AttemptStatus)), max_size=3),
)
rollouts = st.builds(
    Rollout,
    rollout_id=ids,
    input=json_values,
    start_time=times,
    end_time=st.none() | times,
    mode=st.sampled_from([None, "train", "val", "test"]),
    resources_id=st.none() | ids,
    status=st.sampled_from(list(RolloutStatus)),
    config=configs,
    metadata=json_dicts,
)
attempts = st.builds(
    Attempt,
    rollout_id=ids,
    attempt_id=ids,
    sequence_id=st.integers(1, 1000),
    start_time=times,
    end_time=st.none() | times,
    status=st.sampled_from(list(AttemptStatus)),
    worker_id=st.none() | ids,
    last_heartbeat_time=st.none() | times,
    metadata=json_dicts,
)
llms = st.builds(LLM, endpoint=ids, model=ids, sampling_parameters=json_dicts, api_key=st.none() | text)
proxy_llms = st.builds(ProxyLLM, endpoint=ids, model=ids, sampling_parameters=json_dicts)
templates = st.builds(
    PromptTemplate,
    template=st.sampled_from(["Hello {name}", "plain", "{a} and {b}", "{{ x }} jinja"]),
    engine=st.just("f-string"),
) | st.builds(PromptTemplate, template=text, engine=st.just("jinja"))
resources = st.builds(
    ResourcesUpdate,
    resources_id=ids,
    create_time=times,
    update_time=times,
    version=st.integers(0, 100),
    resources=st.dictionaries(ids, llms | proxy_llms | templates, max_size=3),
)
spans = st.builds(
    Span,
    rollout_id=ids,
    attempt_id=ids,
    sequence_id=st.integers(0, 10**6),
    trace_id=st.just("0af7651916cd43dd8448eb211c80319c"),
    span_id=st.just("b7ad6b7169203331"),
    parent_id=st.none() | st.just("00f067aa0ba902b7"),
    name=text,
    start_time=st.none() | times,
    end_time=st.none() | times,
    attributes=attributes,
    events=st.lists(st.builds(SpanEvent, name=text, timestamp=times, attributes=attributes), max_size=2).map(
        tuple
    ),
    links=st.lists(
        st.builds(SpanLink, trace_id=st.just("ab" * 16), span_id=st.just("cd" * 8), attributes=attributes),
        max_size=2,
    ).map(tuple),
    status=st.builds(
        SpanStatus, status_code=st.sampled_from(["UNSET", "OK", "ERROR"]), description=st.none() | text
    ),
    kind=st.sampled_from(["INTERNAL", "CLIENT", "SERVER"]),
    resource=attributes,
)
triplets = st.builds(
    Triplet, prompt=json_values, response=json_values, reward=st.none() | finite, metadata=json_dicts
)
workers = st.builds(
    Worker,
    worker_id=ids,
    status=st.sampled_from(list(WorkerStatus)),
    heartbeat_stats=st.none() | json_dicts,
    last_heartbeat_time=st.none() | times,
    current_rollout_id=st.none() | ids,
)
attempted = st.builds(AttemptedRollout, rollout=rollouts, attempt=attempts)


@pytest.mark.parametrize(
    "strategy",
    [
        rollouts,
        attempts,
        attempted,
        configs,
        resources,
        spans,
        triplets,
        workers,
        llms,
        proxy_llms,
        templates,
    ],
    ids=lambda s: repr(s)[:20],
)
def test_json_round_trip_is_lossless(strategy: st.SearchStrategy[Any]) -> None:
    @given(strategy)
    def check(obj: Any) -> None:
        text = obj.to_json()
        back = type(obj).from_json(text)
        assert back == obj
        assert type(back) is type(obj)
        assert json.loads(back.to_json()) == json.loads(text)

    check()


def test_resource_union_decodes_to_the_right_class() -> None:
    update = ResourcesUpdate(
        "r1",
        1.0,
        2.0,
        1,
        {
            "llm": LLM("http://x/v1", "m"),
            "proxy": ProxyLLM("http://p/v1", "m"),
            "prompt": PromptTemplate("{q}"),
        },
    )
    back = ResourcesUpdate.from_dict(update.to_dict())
    assert [type(r) for r in back.resources.values()] == [LLM, ProxyLLM, PromptTemplate]


def test_unknown_resource_type_is_rejected_with_its_name() -> None:
    data = {
        "resources_id": "r",
        "create_time": 0,
        "update_time": 0,
        "version": 1,
        "resources": {"x": {"resource_type": "gpu"}},
    }
    with pytest.raises(ValueError, match="'gpu'"):
        ResourcesUpdate.from_dict(data)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: RolloutConfig(max_attempts=0), "max_attempts must be an integer >= 1, got 0"),
        (lambda: RolloutConfig(timeout_seconds=-1), "timeout_seconds must be a positive number"),
        (lambda: RolloutConfig(unresponsive_seconds=math.inf), "unresponsive_seconds"),
        (lambda: RolloutConfig(retry_condition=["boom"]), "Invalid attempt status in retry_condition 'boom'"),
        (lambda: RolloutConfig(retry_condition="failed"), "got the string 'failed'"),
        (
            lambda: Rollout("r", None, 0.0, status="done"),
            "Invalid rollout status 'done'; expected one of: queuing",
        ),
        (
            lambda: Rollout("r", None, 0.0, mode="training"),
            "Rollout.mode must be one of train, val, test or None, got 'training'",
        ),
        (lambda: Rollout("", None, 0.0), "rollout_id must be a non-empty string"),
        (lambda: Attempt("r", "a", 0, 0.0), "sequence_id must be an integer >= 1, got 0"),
        (lambda: Attempt("r", "a", 1, 0.0, status="ok"), "Invalid attempt status 'ok'"),
        (lambda: Triplet("p", "r", reward=math.nan), "finite number or None, got nan"),
        (lambda: LLM("", "m"), "endpoint must be a non-empty string"),
        (lambda: PromptTemplate("{unclosed"), "not a valid f-string template"),
        (lambda: PromptTemplate("x", engine="mustache"), "Unknown PromptTemplate engine 'mustache'"),
        (lambda: ResourcesUpdate("r", 0, 0, 1, {"p": "text"}), "resource 'p' must be an LLM"),
        (lambda: Span("r", "a", -1, "t", "s", None, "n"), "sequence_id must be an integer >= 0, got -1"),
    ],
)
def test_invalid_values_fail_at_construction(factory: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace("[", r"\[")):
        factory()


def test_decoding_wrong_json_shape_names_the_field() -> None:
    with pytest.raises(TypeError, match=r"Rollout.metadata: expected a JSON dict, got list"):
        Rollout.from_dict({"rollout_id": "r", "input": 1, "start_time": 0.0, "metadata": [1]})


def test_any_finite_reward_is_kept_exactly() -> None:
    for reward in (0, 2, -5.5, 1e300):
        assert Triplet.from_json(Triplet("p", "r", reward).to_json()).reward == reward


def test_prompt_template_formats_and_names_missing_values() -> None:
    template = PromptTemplate("Solve {question} in {style}")
    assert template.placeholders == ["question", "style"]
    assert template.format(question="1+1", style="one word") == "Solve 1+1 in one word"
    with pytest.raises(KeyError, match="'style'"):
        template.format(question="1+1")


def test_jinja_prompt_template_renders() -> None:
    template = PromptTemplate("{% for x in items %}[{{ x }}]{% endfor %}", engine="jinja")
    assert template.format(items=[1, 2]) == "[1][2]"


def test_proxy_llm_routes_by_rollout_and_attempt() -> None:
    llm = ProxyLLM("http://127.0.0.1:9000/v1", "m")
    assert llm.get_base_url("ro-1", "at-2") == "http://127.0.0.1:9000/rollout/ro-1/attempt/at-2/v1"
    with pytest.raises(ValueError, match="needs both rollout_id and attempt_id"):
        llm.get_base_url()


def test_span_from_opentelemetry_sdk_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("parent"),
        tracer.start_as_current_span("child", attributes={"k": "v", "seq": (1, 2)}) as child,
    ):
        child.add_event("tick", {"n": 1})
        child.set_status(Status(StatusCode.ERROR, "bad"))
    child_otel, parent_otel = exporter.get_finished_spans()
    span = Span.from_opentelemetry(child_otel, rollout_id="ro", attempt_id="at", sequence_id=3)
    assert span.name == "child"
    assert span.parent_id == f"{parent_otel.context.span_id:016x}"
    assert span.trace_id == f"{parent_otel.context.trace_id:032x}"
    assert span.attributes == {"k": "v", "seq": [1, 2]}
    assert span.events[0].name == "tick" and span.events[0].attributes == {"n": 1}
    assert span.status == SpanStatus("ERROR", "bad")
    assert span.duration is not None and span.duration >= 0
    assert Span.from_json(span.to_json()) == span
    provider.shutdown()
